# plot.gp - bench/report.py calls: gnuplot -e "outdir='DIR'; which='NAME'; impls='fanout go nginx'" plot.gp
# (optionally also note='a second title line', e.g. the connections and run length; lat_ms='5')
# NAME: throughput | latency | latency-b | concurrency; reads DIR/NAME.dat, writes DIR/NAME.svg and .png.
# The .dat files always hold the columns of all three implementations (fanout, go, nginx; NaN when
# absent); impls lists those that ran, which are plotted.
if (!exists("outdir")) outdir = "."
if (!exists("which")) which = "throughput"
if (!exists("impls")) impls = "fanout go nginx"
if (!exists("note")) note = ""
if (!exists("lat_ms")) lat_ms = "5"
sub = (note eq "") ? "" : "\n".note

datafile = sprintf("%s/%s.dat", outdir, which)
pngterm = (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) ? "pngcairo" : "png"

set datafile missing "NaN"
set grid ytics lc rgb "#dddddd"
set border 3
set xtics nomirror scale 0
set ytics nomirror
set key top right noenhanced
set yrange [0:*]

# per implementation: its place in the .dat columns, its name and colours (dark, mid, light)
pos(w) = (w eq "fanout") ? 0 : ((w eq "go") ? 1 : 2)
label(w) = (w eq "fanout") ? "fanout (C++)" : ((w eq "go") ? "Go/Gin" : "nginx + Lua")
short(w) = (w eq "fanout") ? "fanout" : ((w eq "go") ? "Go" : "nginx")
dark(w) = (w eq "fanout") ? "#1f77b4" : ((w eq "go") ? "#ff7f0e" : "#2ca02c")
mid(w) = (w eq "fanout") ? "#6baed6" : ((w eq "go") ? "#ffbb78" : "#74c476")
light(w) = (w eq "fanout") ? "#aec7e8" : ((w eq "go") ? "#ffd8a8" : "#c7e9c0")
ptype(w) = (w eq "fanout") ? 7 : ((w eq "go") ? 5 : 9)
n = words(impls)
pct(j) = (j == 0) ? "p50" : ((j == 1) ? "p90" : "p99")
shade(w, j) = (j == 0) ? light(w) : ((j == 1) ? mid(w) : dark(w))

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
        set title "Throughput by endpoint (scenario a: upstreams answer at once)".sub noenhanced
        set ylabel "requests / s"
        set style data histograms
        set style histogram clustered gap 1
        set style fill solid 0.85 border -1
        set boxwidth 0.9
        set xrange [-0.6:3.6]  # the four endpoint clusters sit at x = 0..3
        set key outside right top
        plot for [i=1:n] datafile using (column(2 + pos(word(impls, i)))):xtic(1) \
            title label(word(impls, i)) lc rgb dark(word(impls, i))
    }
    if (which eq "latency" || which eq "latency-b") {
        if (which eq "latency") {
            set title "Latency percentiles by endpoint (scenario a: upstreams answer at once)".sub noenhanced
        } else {
            set title "Latency percentiles by endpoint (scenario b: upstreams answer after ".lat_ms." ms)".sub noenhanced
        }
        set ylabel "ms"
        set style data histograms
        set style histogram clustered gap 1
        set style fill solid 0.85 border -1
        set boxwidth 0.9
        set xrange [-0.6:3.6]  # the four endpoint clusters sit at x = 0..3
        set key outside right top
        # k = 0 .. 3n-1: implementation k/3, percentile k%3 (columns p50 p90 p99 per implementation)
        plot for [k=0:3*n-1] datafile using (column(2 + 3 * pos(word(impls, k / 3 + 1)) + k % 3)):xtic(1) \
            title short(word(impls, k / 3 + 1))." ".pct(k % 3) lc rgb shade(word(impls, k / 3 + 1), k % 3)
    }
    if (which eq "concurrency") {
        set title "Throughput by number of connections (scenario a)".sub noenhanced
        set ylabel "requests / s"
        set xlabel "wrk connections"
        set logscale x 2
        set xrange [12:340]
        set xtics (16, 32, 64, 128, 256)
        set grid xtics ytics lc rgb "#dddddd"
        set key outside right top
        set style data linespoints
        names = "wg channel ctx-timeout errgroup"
        # k = 0 .. 4n-1: implementation k/4, endpoint k%4 (columns: 4 endpoints per implementation)
        plot for [k=0:4*n-1] datafile using 1:(column(2 + 4 * pos(word(impls, k / 4 + 1)) + k % 4)) \
            title short(word(impls, k / 4 + 1))." ".word(names, k % 4 + 1) \
            lc rgb dark(word(impls, k / 4 + 1)) dt k % 4 + 1 pt (ptype(word(impls, k / 4 + 1)))
        unset logscale x
    }
    unset output
}
