# plot_resilience.gp - report_resilience.py calls:
#   gnuplot -e "outdir='DIR'; which='NAME'; after=S; span=S; hedged=0|1; plain=0|1; breaker=0|1" plot_resilience.gp
# NAME: e (resilience-e.dat: latency percentiles, plain vs hedged), f-refuse / f-hang
# (resilience-f-MODE-{plain,breaker}.dat: answers/s and CPU over time, outage from `after` for `span`
# seconds), g (resilience-g.dat: late work per 1000 requests). Writes DIR/resilience-NAME.svg and .png.
if (!exists("outdir")) outdir = "."
if (!exists("which")) which = "e"
if (!exists("after")) after = 0
if (!exists("span")) span = 0
if (!exists("hedged")) hedged = 1
if (!exists("plain")) plain = 1
if (!exists("breaker")) breaker = 1

pngterm = (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) ? "pngcairo" : "png"
set datafile missing "NaN"
set grid ytics lc rgb "#dddddd"
set border 3
set xtics nomirror scale 0
set ytics nomirror
set key noenhanced

c_plain = "#1f77b4"
c_other = "#d62728"
# the histograms' clusters sit at x = 0 .. rows-1
if (which eq "e" || which eq "g") {
    stats sprintf("%s/resilience-%s.dat", outdir, which) using 0 nooutput
    nrows = STATS_records
}

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
    set output sprintf("%s/resilience-%s.%s", outdir, which, fmt)

    if (which eq "e") {
        datafile = outdir."/resilience-e.dat"
        set title "Scenario e: heavy tail, fanout without and with hedging" noenhanced
        set ylabel "ms (log scale)"
        set logscale y
        set yrange [*:*]
        set style data histograms
        set style histogram clustered gap 1
        set style fill solid 0.85 border -1
        set boxwidth 0.9
        set xrange [-0.6:nrows - 0.4]
        set key outside right top
        if (hedged) {
            plot datafile using 2:xtic(1) title "plain p50" lc rgb "#aec7e8", \
                 '' using 3 title "plain p90" lc rgb "#6baed6", \
                 '' using 4 title "plain p99" lc rgb c_plain, \
                 '' using 5 title "hedged p50" lc rgb "#f7b6b6", \
                 '' using 6 title "hedged p90" lc rgb "#ef6f6f", \
                 '' using 7 title "hedged p99" lc rgb c_other
        } else {
            plot datafile using 2:xtic(1) title "plain p50" lc rgb "#aec7e8", \
                 '' using 3 title "plain p90" lc rgb "#6baed6", \
                 '' using 4 title "plain p99 (hedged: skipped)" lc rgb c_plain
        }
        unset logscale y
    }
    if (which eq "f-refuse" || which eq "f-hang") {
        mode = which[3:]
        fp = sprintf("%s/resilience-f-%s-plain.dat", outdir, mode)
        fb = sprintf("%s/resilience-f-%s-breaker.dat", outdir, mode)
        set title sprintf("Scenario f (%s): outage from %g s for %g s (shaded)", mode, after, span) noenhanced
        set xlabel "seconds after the simulator started"
        set ylabel "answers / s"
        set y2label "fanout CPU, % of a core"
        set yrange [0:*]
        set y2range [0:*]
        set y2tics nomirror
        set border 11
        set key below horizontal
        set object 1 rect from after, graph 0 to after + span, graph 1 fc rgb "#f2dede" fs solid 0.6 noborder behind
        if (plain && breaker) {
            plot fp using 1:2 with lines lw 2 lc rgb c_plain title "answers/s, no breaker", \
                 fb using 1:2 with lines lw 2 lc rgb c_other title "answers/s, breaker", \
                 fp using 1:3 axes x1y2 with lines dt 2 lc rgb c_plain title "CPU %, no breaker", \
                 fb using 1:3 axes x1y2 with lines dt 2 lc rgb c_other title "CPU %, breaker"
        } else {
            if (plain) {
                plot fp using 1:2 with lines lw 2 lc rgb c_plain title "answers/s, no breaker", \
                     fp using 1:3 axes x1y2 with lines dt 2 lc rgb c_plain title "CPU %, no breaker"
            } else {
                plot fb using 1:2 with lines lw 2 lc rgb c_other title "answers/s, breaker", \
                     fb using 1:3 axes x1y2 with lines dt 2 lc rgb c_other title "CPU %, breaker"
            }
        }
        unset object 1
        unset y2tics
        unset y2label
        unset xlabel
        set border 3
    }
    if (which eq "g") {
        datafile = outdir."/resilience-g.dat"
        set title "Scenario g: upstream work after fanout's deadline" noenhanced
        set ylabel "ms of late work per 1000 requests"
        set yrange [0:*]
        set style data histograms
        set style histogram clustered gap 1
        set style fill solid 0.85 border -1
        set boxwidth 0.9
        set xrange [-0.6:nrows - 0.4]
        set key outside right top
        plot datafile using 2:xtic(1) title "header sent, honoured" lc rgb c_plain, \
             '' using 3 title "no header" lc rgb c_other
    }
    unset output
}
