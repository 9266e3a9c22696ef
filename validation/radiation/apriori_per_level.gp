# Draws apriori_per_level.png from apriori_per_level.dat: gnuplot apriori_per_level.gp
set terminal pngcairo size 1000,640 font 'sans,11' noenhanced
set output 'apriori_per_level.png.tmp'
set xlabel "tau error, surrogate - reference (%)"
set ylabel "pressure (hPa)"
set title "relative error of tau by pressure (all 256 g-points)"
set logscale y
set grid lc rgb '#dddddd'
set yrange [1100:0.01]
set key outside bottom center horizontal
plot 'apriori_per_level.dat' using (($3+$5)/2):1:3:5:7:8 with boxxyerror fs solid 0.35 noborder lc rgb '#6baed6' title "5-95 % of errors", \
     '' using 4:1 with linespoints lw 2 pt 5 ps 0.5 lc rgb '#08519c' title "median", \
     '' using 2:1 with linespoints lw 2 pt 7 ps 0.6 lc rgb '#d94801' title "mean", \
     '' using (0):1 with lines lc rgb 'black' dt 2 title "zero error"
set output
system "mv -f 'apriori_per_level.png.tmp' 'apriori_per_level.png'"
