# The GIL chart of make bench ARGS='--engine python', drawn by bench/run:
#   gnuplot -e "datafile='X.dat'; outfile='X.png'; charttitle='...';
#               cpun=30" gil.gp
# datafile columns: 1 model, 2 CPU-bound rps with 1 client, 3 with 2
# clients, 4 their ratio; '?' where not run. A linear scale, so that the
# GIL is plain: a thread per connection stays flat from 1 client to 2,
# processes double.

if (!exists("cpun")) cpun = 30

set terminal pngcairo size 1400,650 font "sans,10"
set output outfile
set datafile missing '?'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top left font "sans,9" opaque
set yrange [0:*]
set multiplot layout 1,2 title charttitle font "sans,12"

set title sprintf("CPU-bound: naive fib(%d) in CPython, requests/s (linear; serial models: served client)", cpun)
set offsets 0, 0, graph 0.2, 0
plot datafile using 2:xtic(1) title "1 client", \
     '' using 3 title "2 clients"

set title "2 clients / 1 client: 1 = the GIL serialises, 2 = both cores"
set yrange [0:2.6]
set ytics 0.5
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb "gray40"
set arrow 2 from graph 0, first 2 to graph 1, first 2 nohead dt 2 lc rgb "gray40"
plot datafile using 4:xtic(1) title "2 / 1" lc rgb "#4477aa"

unset multiplot
