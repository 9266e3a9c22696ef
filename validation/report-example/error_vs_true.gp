# Draws error_vs_true.png from error_vs_true.dat: gnuplot error_vs_true.gp
set terminal pngcairo size 800,560 font 'sans,11' noenhanced
set output 'error_vs_true.png.tmp'
set xlabel "ln tau, kernel"
set ylabel "error of ln tau, surrogate - kernel (~ relative error of tau)"
set title "error density versus the kernel's ln tau, all points"
set grid lc rgb '#dddddd'

set xrange [-30.0411453:4.94626522]
set yrange [-0.184477329:0.186477661]
set logscale cb
set cblabel "samples per bin"
set palette defined (0 '#9ecae1', 1 '#4292c6', 2 '#08519c', 3 '#08306b')
set key top left opaque
plot 'error_vs_true.dat' nonuniform matrix using 1:2:3 with image notitle, \
     0 with lines dt 2 lw 1.5 lc rgb 'black' title "zero error"
set output
system "mv -f 'error_vs_true.png.tmp' 'error_vs_true.png'"
