# Draws learning_curves.png from learning_curves.dat: gnuplot learning_curves.gp
set terminal pngcairo size 800,560 font 'sans,11' noenhanced
set output 'learning_curves.png.tmp'
set xlabel "epoch"
set ylabel "MSE of standardised ln tau"
set title "learning curves"
set logscale y
set grid lc rgb '#dddddd'
set format y '%.0e'
set key top right opaque
plot 'learning_curves.dat' using 1:2 with lines lw 2 lc rgb '#08519c' title "training loss", \
     '' using 1:3 with lines lw 2 lc rgb '#d94801' title "validation loss"
set output
system "mv -f 'learning_curves.png.tmp' 'learning_curves.png'"
