# plot.gp - bench/report.py calls: gnuplot -e "outdir='DIR'; which='NAME'; have_go=0|1" plot.gp
# NAME: throughput | latency | latency-b | concurrency; reads DIR/NAME.dat, writes DIR/NAME.svg and .png.
if (!exists("outdir")) outdir = "."
if (!exists("which")) which = "throughput"
if (!exists("have_go")) have_go = 1

datafile = sprintf("%s/%s.dat", outdir, which)
pngterm = (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) ? "pngcairo" : "png"

set datafile missing "NaN"
set grid ytics lc rgb "#dddddd"
set border 3
set xtics nomirror scale 0
set ytics nomirror
set key top right noenhanced
set yrange [0:*]

c_fanout = "#1f77b4"
c_go = "#ff7f0e"

do for [fmt in "svg png"] {
    if (fmt eq "svg") {
        set terminal svg size 900,480 dynamic font "Helvetica,12" background rgb "white"
    } else {
        if (pngterm eq "pngcairo") {
            set terminal pngcairo size 900,480 font "Helvetica,11" background rgb "white"
        } else {
            set terminal png size 900,480 background rgb "white"
        }
    }
    set output sprintf("%s/%s.%s", outdir, which, fmt)

    if (which eq "throughput") {
        set title "Throughput by endpoint (scenario a: upstreams answer at once)" noenhanced
        set ylabel "requests / s"
        set style data histograms
        set style histogram clustered gap 1
        set style fill solid 0.85 border -1
        set boxwidth 0.9
        if (have_go) {
            plot datafile using 2:xtic(1) title "fanout (C++)" lc rgb c_fanout, \
                 '' using 3 title "Go/Gin" lc rgb c_go
        } else {
            plot datafile using 2:xtic(1) title "fanout (C++)" lc rgb c_fanout
        }
    }
    if (which eq "latency" || which eq "latency-b") {
        if (which eq "latency") {
            set title "Latency percentiles by endpoint (scenario a: upstreams answer at once)" noenhanced
        } else {
            set title "Latency percentiles by endpoint (scenario b: upstreams answer after 5 ms)" noenhanced
        }
        set ylabel "ms"
        set style data histograms
        set style histogram clustered gap 1
        set style fill solid 0.85 border -1
        set boxwidth 0.9
        if (have_go) {
            plot datafile using 2:xtic(1) title "fanout p50" lc rgb "#aec7e8", \
                 '' using 3 title "fanout p90" lc rgb "#6baed6", \
                 '' using 4 title "fanout p99" lc rgb c_fanout, \
                 '' using 5 title "Go p50" lc rgb "#ffd8a8", \
                 '' using 6 title "Go p90" lc rgb "#ffbb78", \
                 '' using 7 title "Go p99" lc rgb c_go
        } else {
            plot datafile using 2:xtic(1) title "fanout p50" lc rgb "#aec7e8", \
                 '' using 3 title "fanout p90" lc rgb "#6baed6", \
                 '' using 4 title "fanout p99" lc rgb c_fanout
        }
    }
    if (which eq "concurrency") {
        set title "Throughput by number of connections (scenario a)" noenhanced
        set ylabel "requests / s"
        set xlabel "wrk connections"
        set logscale x 2
        set xrange [12:340]
        set xtics (16, 32, 64, 128, 256)
        set grid xtics ytics lc rgb "#dddddd"
        set key outside right top
        set style data linespoints
        names = "wg channel ctx-timeout errgroup"
        if (have_go) {
            plot for [i=1:4] datafile using 1:(column(i+1)) title "fanout ".word(names, i) lc rgb c_fanout dt i pt 7, \
                 for [i=1:4] datafile using 1:(column(i+5)) title "Go ".word(names, i) lc rgb c_go dt i pt 5
        } else {
            plot for [i=1:4] datafile using 1:(column(i+1)) title "fanout ".word(names, i) lc rgb c_fanout dt i pt 7
        }
        unset logscale x
    }
    unset output
}
