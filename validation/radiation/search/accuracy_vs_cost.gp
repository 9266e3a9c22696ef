# Draws accuracy_vs_cost.png from accuracy_vs_cost.dat: gnuplot accuracy_vs_cost.gp
set terminal pngcairo size 1000,620 font 'sans,11' noenhanced
set output 'accuracy_vs_cost.png.tmp'
set multiplot layout 1,2 title "architecture search: accuracy versus cost (tanh MLPs, 18 -> hidden -> 256)"
set logscale xy
set grid lc rgb '#dddddd'
set key top right font ",9" opaque
set xlabel "FLOPs per layer"
set ylabel "worst-level flux MAE (W m^-2)"
set title "flux error"
set xrange [10000:200000]
plot 'accuracy_vs_cost.dat' using 1:3 with points pt 7 ps 1.3 lc rgb '#08519c' title "validation columns", \
     '' using 1:4 with points pt 5 ps 1.1 lc rgb '#d94801' title "held-out sites", \
     '' using 1:3:6 with labels offset 0,1 font ",8" notitle, \
     0.5 with lines dt 2 lc rgb '#777777' title "target 0.5"
set ylabel "RMSE of standardised ln k (validation)"
set xlabel "measured time of the C plan (us per layer)"
set title "a priori error"
set autoscale x
unset key
plot 'accuracy_vs_cost.dat' using 2:5 with points pt 7 ps 1.3 lc rgb '#238b45', \
     '' using 2:5:6 with labels offset 0,1 font ",8"
unset multiplot
set output
system "mv -f 'accuracy_vs_cost.png.tmp' 'accuracy_vs_cost.png'"
