# Draws error_vs_pressure.png from error_vs_pressure.dat: gnuplot error_vs_pressure.gp
set terminal pngcairo size 800,560 font 'sans,11' noenhanced
set output 'error_vs_pressure.png.tmp'
set xlabel "error of tau, surrogate - kernel (%)"
set ylabel "pressure (hPa)"
set title "tau error by pressure (all 16 spectral points)"
set logscale y
set grid lc rgb '#dddddd'
set yrange [1050:1]
set key outside bottom center horizontal
plot 'error_vs_pressure.dat' using (($3+$5)/2):1:3:5:7:8 with boxxyerror fs solid 0.35 noborder lc rgb '#6baed6' title "5-95 % of errors", \
     '' using 4:1 with linespoints lw 2 pt 5 ps 0.5 lc rgb '#08519c' title "median", \
     '' using 2:1 with linespoints lw 2 pt 7 ps 0.6 lc rgb '#d94801' title "mean", \
     '' using (0):1 with lines lc rgb 'black' dt 2 title "zero error"
set output
system "mv -f 'error_vs_pressure.png.tmp' 'error_vs_pressure.png'"
