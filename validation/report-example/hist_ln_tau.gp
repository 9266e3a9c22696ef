# Draws hist_ln_tau.png from hist_ln_tau.dat: gnuplot hist_ln_tau.gp
set terminal pngcairo size 800,560 font 'sans,11' noenhanced
set output 'hist_ln_tau.png.tmp'
set multiplot
set xrange [-30.0411453:4.94626522]
set lmargin at screen 0.12
set rmargin at screen 0.96
set tmargin at screen 0.92
set bmargin at screen 0.36
set grid lc rgb '#dddddd'
set format x ""
set ylabel "probability density"
set title "distribution of ln tau, all 16 points"

set key top right opaque
plot 'hist_ln_tau.dat' using 1:2 with histeps lw 5 lc rgb '#aaaaaa' title "kernel", \
     '' using 1:3 with histeps lw 1.5 lc rgb '#d94801' title "surrogate"
unset title
unset logscale y
set format x
set tmargin at screen 0.34
set bmargin at screen 0.1
set xlabel "ln tau (all points)"
set ylabel "surrogate / kernel"
set yrange [0.5:1.5]
set ytics 0.25
plot 'hist_ln_tau.dat' using 1:4 with histeps lw 2 lc rgb '#d94801' notitle, 1 with lines dt 2 lc rgb 'black' notitle
unset multiplot
set output
system "mv -f 'hist_ln_tau.png.tmp' 'hist_ln_tau.png'"
