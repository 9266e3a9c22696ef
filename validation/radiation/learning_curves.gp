# Draws learning_curves.png from learning_curves.dat: gnuplot learning_curves.gp
set terminal pngcairo size 1000,640 font 'sans,11' noenhanced
set output 'learning_curves.png.tmp'
set xlabel "epoch"
set ylabel "MSE (standardised targets)"
set title "learning curves"
set logscale y
set grid lc rgb '#dddddd'
set format y '%.0e'
set key top right opaque
plot 'learning_curves.dat' using 1:2 with lines lw 2 lc rgb '#08519c' title "tau: training", \
     '' using 1:3 with lines lw 2 lc rgb '#d94801' title "tau: validation", \
     '' using 1:4 with lines lw 2 lc rgb '#238b45' title "Planck: training", \
     '' using 1:5 with lines lw 2 lc rgb '#6a51a3' title "Planck: validation"
set output
system "mv -f 'learning_curves.png.tmp' 'learning_curves.png'"
