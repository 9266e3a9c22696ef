# Draws pred_vs_true.png from pred_vs_true.dat: gnuplot pred_vs_true.gp
set terminal pngcairo size 800,560 font 'sans,11' noenhanced
set output 'pred_vs_true.png.tmp'
set xlabel "ln tau, kernel"
set ylabel "ln tau, surrogate"
set title "surrogate vs kernel, all points"
set grid lc rgb '#dddddd'
set size square
set xrange [-30.0411453:4.94626522]
set yrange [-30.0411453:4.94626522]
set logscale cb
set cblabel "samples per bin"
set palette defined (0 '#9ecae1', 1 '#4292c6', 2 '#08519c', 3 '#08306b')
set key top left opaque
plot 'pred_vs_true.dat' nonuniform matrix using 1:2:3 with image notitle, \
     x with lines dt 2 lw 1.5 lc rgb 'black' title "1:1 (perfect)"
set output
system "mv -f 'pred_vs_true.png.tmp' 'pred_vs_true.png'"
