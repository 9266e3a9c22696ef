# Draws heating_error_vs_pressure.png from heating_error_vs_pressure.dat: gnuplot heating_error_vs_pressure.gp
set terminal pngcairo size 1000,640 font 'sans,11' noenhanced
set output 'heating_error_vs_pressure.png.tmp'
set logscale y
set yrange [1100:0.005]
set format y "%g"
set grid lc rgb '#dddddd'
set title "heating-rate error: 20 held-out sites x 18 experiments"
set xlabel "heating rate, surrogate - reference (K/day)"
set ylabel "pressure (hPa)"
set key top left opaque box
plot 'heating_error_vs_pressure.dat' index 1 using 1:2 with filledcurves closed fs transparent solid 0.3 noborder lc rgb '#6baed6' title "5-95 %", \
     '' index 0 using 2:1 with lines lw 2 lc rgb '#d94801' title "mean", \
     '' index 0 using 5:1 with lines lw 1.5 dt 3 lc rgb '#08519c' title "MAE", \
     '' index 0 using (0):1 with lines lc rgb 'black' dt 2 notitle
set output
system "mv -f 'heating_error_vs_pressure.png.tmp' 'heating_error_vs_pressure.png'"
