# Draws apriori_per_gpoint.png from apriori_per_gpoint.dat: gnuplot apriori_per_gpoint.gp
set terminal pngcairo size 1000,640 font 'sans,11' noenhanced
set output 'apriori_per_gpoint.png.tmp'
set multiplot layout 2,1 title "a priori error per g-point (held-out layers; dotted lines: band limits)"
set logscale y
set format y "%g"
set grid ytics lc rgb '#dddddd'
set xrange [0.5:256.5]
set key outside right top font ",9"
set arrow from 16.5, graph 0 to 16.5, graph 1 nohead lc rgb '#cccccc' dt 3
set arrow from 32.5, graph 0 to 32.5, graph 1 nohead lc rgb '#cccccc' dt 3
set arrow from 48.5, graph 0 to 48.5, graph 1 nohead lc rgb '#cccccc' dt 3
set arrow from 64.5, graph 0 to 64.5, graph 1 nohead lc rgb '#cccccc' dt 3
set arrow from 80.5, graph 0 to 80.5, graph 1 nohead lc rgb '#cccccc' dt 3
set arrow from 96.5, graph 0 to 96.5, graph 1 nohead lc rgb '#cccccc' dt 3
set arrow from 112.5, graph 0 to 112.5, graph 1 nohead lc rgb '#cccccc' dt 3
set arrow from 128.5, graph 0 to 128.5, graph 1 nohead lc rgb '#cccccc' dt 3
set arrow from 144.5, graph 0 to 144.5, graph 1 nohead lc rgb '#cccccc' dt 3
set arrow from 160.5, graph 0 to 160.5, graph 1 nohead lc rgb '#cccccc' dt 3
set arrow from 176.5, graph 0 to 176.5, graph 1 nohead lc rgb '#cccccc' dt 3
set arrow from 192.5, graph 0 to 192.5, graph 1 nohead lc rgb '#cccccc' dt 3
set arrow from 208.5, graph 0 to 208.5, graph 1 nohead lc rgb '#cccccc' dt 3
set arrow from 224.5, graph 0 to 224.5, graph 1 nohead lc rgb '#cccccc' dt 3
set arrow from 240.5, graph 0 to 240.5, graph 1 nohead lc rgb '#cccccc' dt 3
set ylabel "relative error"
plot 'apriori_per_gpoint.dat' using 1:2 with lines lw 2 lc rgb '#08519c' title "RMSE of ln tau", \
     '' using 1:3 with lines lw 2 lc rgb '#d94801' title "mean |tau error|", \
     '' using 1:4 with lines lw 1 lc rgb '#fd8d3c' title "p95 |tau error|"
set ylabel "|error of exp(-tau)|"
set xlabel "g-point (16 per band, 10-250 ... 2680-3250 cm^-1)"
set yrange [1e-7:1]
plot 'apriori_per_gpoint.dat' using 1:($5 > 1e-7 ? $5 : 1e-7) with lines lw 2 lc rgb '#238b45' title "mean", \
     '' using 1:($6 > 1e-7 ? $6 : 1e-7) with lines lw 1 lc rgb '#74c476' title "largest"
unset multiplot
set output
system "mv -f 'apriori_per_gpoint.png.tmp' 'apriori_per_gpoint.png'"
