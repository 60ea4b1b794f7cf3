# plot_growth.gp - bench/report_growth.py calls:
#   gnuplot -e "outdir='DIR'; which='backends|body'; eps='wg ...'; conns='64'; run='5 s runs ...'; rounds='3'; limit=1.3" plot_growth.gp
# Reads DIR/growth-WHICH.dat (column 1: backends or body KiB; then per endpoint of eps: fanout
# median min max, nginx median min max) and writes DIR/growth-WHICH.svg and .png.
if (!exists("outdir")) outdir = "."
if (!exists("which")) which = "backends"
if (!exists("eps")) eps = "wg"
if (!exists("conns")) conns = "?"
if (!exists("run")) run = "?"
if (!exists("rounds")) rounds = "?"

datafile = sprintf("%s/growth-%s.dat", outdir, which)
pngterm = (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) ? "pngcairo" : "png"
n = words(eps)
col(i, j) = 2 + 6 * (i - 1) + 3 * j   # endpoint i (1-based), implementation j (0 fanout, 1 nginx): median
fanout_col(i) = word("#1f77b4 #6baed6 #08519c #9ecae1", (i - 1) % 4 + 1)

set datafile missing "NaN"
set grid xtics ytics lc rgb "#dddddd"
set border 3
set xtics nomirror
set ytics nomirror
set key below horizontal maxcols 4 noenhanced
set style data yerrorlines

do for [fmt in "svg png"] {
    if (fmt eq "svg") {
        set terminal svg size 960,560 dynamic font "Helvetica,12" background rgb "white"
    } else {
        if (pngterm eq "pngcairo") {
            set terminal pngcairo size 960,560 font "Helvetica,11" background rgb "white"
        } else {
            set terminal png size 960,560 background rgb "white"
        }
    }
    set output sprintf("%s/growth-%s.%s", outdir, which, fmt)
    if (which eq "backends") {
        set title sprintf("CPU per backend call by number of backends (fanout's default endpoints over N upstreams)\nwrk %s connections, %s, %s rounds: median, bars min-max\nnginx + Lua: its anchor has 3 upstreams, so N = 3 only", conns, run, rounds) noenhanced
        set xlabel "backends per request (default endpoints, N upstreams)"
        set ylabel "µs of server CPU per backend call"
        set logscale x 2
        set xrange [0.8:20]
        set xtics (1, 2, 3, 4, 8, 16)
        set yrange [0:*]
        plot for [i=1:n] datafile using 1:(column(col(i, 0))):(column(col(i, 0) + 1)):(column(col(i, 0) + 2)) \
                title "fanout ".word(eps, i) lc rgb fanout_col(i) pt 7 dt i, \
             for [i=1:n] datafile using 1:(column(col(i, 1))):(column(col(i, 1) + 1)):(column(col(i, 1) + 2)) \
                with yerrorbars title "nginx + Lua ".word(eps, i) lc rgb "#2ca02c" pt (4 + i)
        unset logscale x
    }
    if (which eq "body") {
        set title sprintf("CPU per upstream MiB by body size (3 upstreams, each answering a body of that size)\nwrk %s connections, %s, %s rounds: median, bars min-max", conns, run, rounds) noenhanced
        set xlabel "upstream body size (KiB, each of 3)"
        set ylabel "ms of server CPU per upstream MiB (log)"
        set logscale x 2
        set logscale y 10
        set xrange [0.5:2048]
        set xtics ("1 KiB" 1, "8 KiB" 8, "64 KiB" 64, "256 KiB" 256, "1 MiB" 1024)
        set yrange [*:*]
        plot for [i=1:n] datafile using 1:(column(col(i, 0))):(column(col(i, 0) + 1)):(column(col(i, 0) + 2)) \
                title "fanout ".word(eps, i) lc rgb fanout_col(i) pt 7 dt i, \
             for [i=1:n] datafile using 1:(column(col(i, 1))):(column(col(i, 1) + 1)):(column(col(i, 1) + 2)) \
                title "nginx + Lua ".word(eps, i) lc rgb "#2ca02c" pt 9 dt i
        unset logscale x
        unset logscale y
    }
    unset output
}
