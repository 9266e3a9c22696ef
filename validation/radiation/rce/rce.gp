# Draws rce.png from rce_profiles.dat: gnuplot rce.gp
set terminal pngcairo size 1200,720 font 'sans,10' noenhanced
set output 'rce.png.tmp'
set multiplot layout 1,2
set logscale y
set yrange [*:*] reverse
set ylabel 'pressure (hPa)'
set grid
set key outside below maxcols 2 font ',8' spacing 1.1
set bmargin 9
set xlabel 'temperature (K)'
set title 'equilibrium temperature'
plot 'rce_profiles.dat' index 0 using 2:1 with lines lw 2 lc 1 title 'ref: present day (CO2 397.5 ppm)', '' index 0 using 3:1 with lines dt 2 lw 2 lc 1 title 'surrogate', 'rce_profiles.dat' index 1 using 2:1 with lines lw 2 lc 2 title 'ref: 4xCO2 (CO2 1137.3 ppm)', '' index 1 using 3:1 with lines dt 2 lw 2 lc 2 title 'surrogate', 'rce_profiles.dat' index 2 using 2:1 with lines lw 2 lc 3 title 'ref: warm: +60 W m-2 solar (CO2 397.5 ppm)', '' index 2 using 3:1 with lines dt 2 lw 2 lc 3 title 'surrogate'
set xlabel 'T_nn - T_ref (K)'
set title 'temperature difference (target: |dT| <= 0.5 K below 10 hPa)'
set xrange [-1.783:1.783]
set arrow 1 from graph 0, first 10 to graph 1, first 10 nohead dt 3
set arrow 2 from -0.5, first 10 to -0.5, graph 0 nohead dt 3 lc rgb 'red'
set arrow 3 from 0.5, first 10 to 0.5, graph 0 nohead dt 3 lc rgb 'red'
plot 'rce_profiles.dat' index 0 using 4:1 with linespoints pt 7 ps 0.5 lw 2 lc 1 title 'present day (CO2 397.5 ppm)', 'rce_profiles.dat' index 1 using 4:1 with linespoints pt 7 ps 0.5 lw 2 lc 2 title '4xCO2 (CO2 1137.3 ppm)', 'rce_profiles.dat' index 2 using 4:1 with linespoints pt 7 ps 0.5 lw 2 lc 3 title 'warm: +60 W m-2 solar (CO2 397.5 ppm)'
unset multiplot
set output
system "mv -f 'rce.png.tmp' 'rce.png'"
