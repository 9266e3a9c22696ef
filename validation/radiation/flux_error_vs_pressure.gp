# Draws flux_error_vs_pressure.png from flux_error_vs_pressure.dat: gnuplot flux_error_vs_pressure.gp
set terminal pngcairo size 1000,640 font 'sans,11' noenhanced
set output 'flux_error_vs_pressure.png.tmp'
set multiplot layout 1,3 title "flux error, surrogate - reference optics: 20 held-out sites x 18 experiments"
set logscale y
set yrange [1100:0.001]
set format y "%g"
set grid lc rgb '#dddddd'
set xlabel "surrogate - reference (W m^-2)"
set ylabel "pressure (hPa)"
set key top left font ",9" opaque box
set title "upward flux"
plot 'flux_error_vs_pressure.dat' index 1 using 1:2 with filledcurves closed fs transparent solid 0.3 noborder lc rgb '#6baed6' title "5-95 %", \
     '' index 0 using 2:1 with lines lw 2 lc rgb '#d94801' title "mean", \
     '' index 0 using 11:1 with lines lw 1.5 dt 3 lc rgb '#08519c' title "MAE", \
     '' index 0 using (0):1 with lines lc rgb 'black' dt 2 notitle, \
     '' index 0 using (0.5):1 with lines lc rgb '#999999' dt 4 title "MAE target 0.5", \
     '' index 0 using (-0.5):1 with lines lc rgb '#999999' dt 4 notitle
unset ylabel
set title "downward flux"
plot 'flux_error_vs_pressure.dat' index 2 using 1:2 with filledcurves closed fs transparent solid 0.3 noborder lc rgb '#6baed6' title "5-95 %", \
     '' index 0 using 5:1 with lines lw 2 lc rgb '#d94801' title "mean", \
     '' index 0 using 12:1 with lines lw 1.5 dt 3 lc rgb '#08519c' title "MAE", \
     '' index 0 using (0):1 with lines lc rgb 'black' dt 2 notitle, \
     '' index 0 using (0.5):1 with lines lc rgb '#999999' dt 4 title "MAE target 0.5", \
     '' index 0 using (-0.5):1 with lines lc rgb '#999999' dt 4 notitle
unset ylabel
set title "net flux (down - up)"
plot 'flux_error_vs_pressure.dat' index 3 using 1:2 with filledcurves closed fs transparent solid 0.3 noborder lc rgb '#6baed6' title "5-95 %", \
     '' index 0 using 8:1 with lines lw 2 lc rgb '#d94801' title "mean", \
     '' index 0 using 13:1 with lines lw 1.5 dt 3 lc rgb '#08519c' title "MAE", \
     '' index 0 using (0):1 with lines lc rgb 'black' dt 2 notitle, \
     '' index 0 using (0.5):1 with lines lc rgb '#999999' dt 4 title "MAE target 0.5", \
     '' index 0 using (-0.5):1 with lines lc rgb '#999999' dt 4 notitle

unset multiplot
set output
system "mv -f 'flux_error_vs_pressure.png.tmp' 'flux_error_vs_pressure.png'"
