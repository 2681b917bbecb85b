# The latency curve of make bench, drawn by bench/run:
#   gnuplot -e "datafile='X.dat'; outfile='X.png'; charttitle='...';
#               names='thread reactor go'; kneeus=1000" curve.gp
# datafile: one block per server, in the order of names, blocks apart by
# two blank lines; columns: 1 offered requests/s, 2 p99 latency us (from
# each request's intended send time). kneeus: the knee's p99 bound.

if (!exists("kneeus")) kneeus = 1000

set terminal pngcairo size 1200,750 font "sans,10"
set output outfile
set title charttitle."\np99 latency of fib(1) against offered load, 50 connections, open loop" font "sans,11"
set xlabel "offered load, requests/s"
set ylabel "p99 latency, µs (log scale)"
set logscale y
set format x "%.0s%c"
set grid xtics ytics mytics
set key outside right top font "sans,9"
set xrange [0:*]
set arrow from graph 0, first kneeus to graph 1, first kneeus nohead dt 2 lc rgb "gray40"
set label sprintf("knee bound: p99 %g ms", kneeus / 1000.0) at graph 0.01, first kneeus * 1.15 font "sans,8" tc rgb "gray40"
# gnuplot's own cycle repeats after 8 colours: one each for up to 12
# servers, and a point type each besides
colors = "#9400d3 #009e73 #56b4e9 #e69f00 #d4b800 #0072b2 #e51e10 #000000 #ff69b4 #8b4513 #808080 #2e8b57"
plot for [i = 1:words(names)] datafile index (i - 1) using 1:2 \
     with linespoints lw 2 ps 0.9 pt ((i - 1) % 13 + 1) \
     lc rgb word(colors, (i - 1) % words(colors) + 1) title word(names, i)
