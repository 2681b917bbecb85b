# The chart of make bench, drawn by bench/run:
#   gnuplot -e "datafile='X.dat'; outfile='X.png'; charttitle='...';
#               cpun=30; loadn=35" chart.gp
# datafile columns: 1 model, 2 io1, 3 io2, 4 io50, 5 io50p16, 6 cpu1,
# 7 cpu2, 8 ioload, 9 io1 p99 us, 10 ioload p99 us, 11 MiB io50,
# 12 MiB 1+1000 idle, 13 io1same, 14 io10k, 15 MiB io10k.
# '?' is a cell that was not run or starved. Rows: fibd's models, then the
# peers (go, redis). Grouped bars per model; throughput panels on a log
# scale.

if (!exists("cpun")) cpun = 30
if (!exists("loadn")) loadn = 35

set terminal pngcairo size 1500,1000 font "sans,10"
set output outfile
set datafile missing '?'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top right font "sans,9" opaque
set xtics nomirror
set multiplot layout 2,2 title charttitle font "sans,12"

set title "I/O-bound: fib(1), requests/s (log scale; single and many: served clients only; redis: PING)"
set logscale y
set format y "%.0s%c"
plot datafile using 2:xtic(1) title "1 client", \
     '' using 3 title "2 clients", \
     '' using 4 title "50 clients", \
     '' using 5 title "50 clients, -P 16", \
     '' using 14 title "10,000 clients"

set title sprintf("CPU-bound: naive fib(%d), requests/s (log scale)", cpun)
plot datafile using 6:xtic(1) title "1 client", \
     '' using 7 title "2 clients"

set title sprintf("fib(1), 1 client, requests/s: alone, and while another client keeps fib(%d) in flight (log scale)", loadn)
plot datafile using 2:xtic(1) title "alone, unpinned", \
     '' using 13 title "alone, fibd and fibload on one CPU", \
     '' using 8 title sprintf("under fib(%d)", loadn)

set title "Server memory: peak RSS of its processes summed, MiB"
unset logscale y
set yrange [0:*]
set offsets 0, 0, graph 0.35, 0  # headroom for the key
plot datafile using 11:xtic(1) title "50 clients", \
     '' using 12 title "1 active + 1,000 idle connections", \
     '' using 15 title "10,000 clients"

unset multiplot
