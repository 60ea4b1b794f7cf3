#!/usr/bin/env python3
"""report_growth.py OUTDIR - bench/growth's growth.csv + growth.env into growth.md and plots.

Standard library only. Writes OUTDIR/growth.md, OUTDIR/growth-backends.dat, OUTDIR/growth-body.dat
and, when gnuplot is installed, OUTDIR/growth-{backends,body}.{svg,png} (plot_growth.gp).
Every figure is the median of the rounds with their spread (min-max); a target is judged (PASS or
MISS) only from at least MIN_ROUNDS rounds, on the median of the rounds' ratios, the two runs of a
ratio being of the same round.
"""
import csv
import os
import shutil
import statistics
import subprocess
import sys

MIN_ROUNDS = 3
BACKENDS_LIMIT = 1.3  # fanout's CPU per backend call at 16 backends / at 3
BODY_LIMIT = 2.0      # fanout's CPU per upstream MiB / nginx + Lua's, at the largest body
MIB = 1024 * 1024
IMPL_NAME = {"fanout": "fanout", "nginx": "nginx + Lua"}


def read_env(path):
    env = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    env[k] = v
    return env


def f(row, key):
    try:
        return float(row[key])
    except (KeyError, TypeError, ValueError):
        return None


def us_per_call(r):
    n, cpu, calls = f(r, "requests"), f(r, "server_cpu_s"), f(r, "calls_per_request")
    return cpu * 1e6 / (n * calls) if n and calls else None


def req_per_core_s(r):
    n, cpu = f(r, "requests"), f(r, "server_cpu_s")
    return n / cpu if n and cpu else None


def ms_per_mib(r):
    n, cpu, ub = f(r, "requests"), f(r, "server_cpu_s"), f(r, "upstream_bytes_per_request")
    return cpu * 1e3 / (n * ub / MIB) if n and ub else None


def spread(values, digits):
    """'median (min–max)' of the values, or '–'."""
    vs = [v for v in values if v is not None]
    if not vs:
        return "–"
    med = statistics.median(vs)
    if len(vs) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({min(vs):.{digits}f}–{max(vs):.{digits}f})"


def stats(values):
    vs = [v for v in values if v is not None]
    if not vs:
        return None
    return statistics.median(vs), min(vs), max(vs), len(vs)


def size_label(b):
    b = int(b)
    if b >= MIB and b % MIB == 0:
        return f"{b // MIB} MiB"
    if b >= 1024 and b % 1024 == 0:
        return f"{b // 1024} KiB"
    return f"{b} B"


def verdict(med, limit, rounds):
    if rounds < MIN_ROUNDS:
        return f"not judged ({rounds} round{'s' if rounds != 1 else ''}; needs {MIN_ROUNDS})"
    return "PASS" if med <= limit else "**MISS**"


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    env = read_env(os.path.join(out, "growth.env"))
    with open(os.path.join(out, "growth.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    failures = []
    fp = os.path.join(out, "growth_failures.txt")
    if os.path.exists(fp):
        failures = [l.strip() for l in open(fp) if l.strip()]

    def select(part, impl=None, param=None, ep=None):
        return [r for r in rows if r["part"] == part and (impl is None or r["impl"] == impl)
                and (param is None or int(r["param"]) == int(param)) and (ep is None or r["endpoint"] == ep)]

    def ordered(seq):
        seen = []
        for x in seq:
            if x not in seen:
                seen.append(x)
        return seen

    def by_round(rs, fn):
        return {r["round"]: fn(r) for r in rs}

    md = []
    w = md.append
    run = f"{env.get('duration_s', '?')} s runs after a {env.get('warmup_s', '?')} s warm-up"
    w(f"# fanout growth: backends and body size, {env.get('date', '?')}"
      + (" (quick smoke run)" if env.get("mode") == "quick" else ""))
    w("")
    w("**Absolute numbers are specific to this machine and to what else ran on it; the comparisons are "
      "side by side (runs alternating round by round on the same simulator), and only the ratios mean "
      "something.** `bench/growth` (see its `--help`) made this report; every figure is the median of "
      f"the rounds, with their spread (min–max) in brackets. A target is judged only from at least "
      f"{MIN_ROUNDS} rounds, on the median of the rounds' ratios (both runs of a ratio from the same round).")
    w("")
    w(f"- fanout: {env.get('fanout_version', '?')} at git {env.get('git_rev', '?')} "
      f"({env.get('git_dirty_files', '?')} files modified outside bench/), build {env.get('build', '?')}, "
      f"`--threads {env.get('fanout_threads', '?')}` {env.get('fanout_args', '')}")
    w(f"- nginx + Lua: `{env.get('nginx_lua', '?')}/run.sh`, {env.get('nginx_version', '?')}; "
      "CPU = master + worker")
    w(f"- machine: {env.get('cpu_model', '?')}, {env.get('nproc', '?')} cores shared by wrk, fanout-sim and "
      f"the server under test; load average {env.get('loadavg_start', '?')} at the start, "
      f"{env.get('loadavg_end', '?')} at the end; {env.get('elapsed_s', '?')} s in all")
    w(f"- load: `wrk {env.get('wrk', '')} -c<conns> -d{env.get('duration_s', '?')}s` after a "
      f"{env.get('warmup_s', '?')} s warm-up wrk of its own, {env.get('rounds', '?')} rounds; the servers' "
      "order rotates from one endpoint and round to the next")
    w("- server CPU: the run time of every thread of the server (`/proc/PID/task/*/schedstat`; nginx: master "
      "and worker) over the measured run; growth.csv has utime+stime beside it (`server_ticks_cpu_s`)")
    w("- units of published gateway benchmarks: **requests per core-second** (requests / server CPU "
      "seconds) and **µs of CPU per upstream call** (server CPU / (requests × backends))")
    w("")

    made = []

    # ---- backends
    b_rows = select("backends")
    if b_rows:
        eps = ordered(r["endpoint"] for r in b_rows)
        ns = sorted({int(r["param"]) for r in b_rows})
        conns = env.get("b_conns", "?")
        w(f"## CPU per backend call, 1 to {max(ns)} backends")
        w("")
        w(f"fanout's four default endpoints over N upstreams (`--upstream` N times: fanout-sim services "
          f"s01…s{max(ns):02d}, each answering the same {int(f(b_rows[0], 'upstream_bytes_per_request') / f(b_rows[0], 'calls_per_request'))}-byte "
          f"JSON body at once), {conns} connections, {run}. nginx + Lua's anchor is written for exactly three "
          "upstreams (users, orders, inventory; its Lua lists them): it cannot fan out to N, so it stands at "
          "N = 3 only, as a reference; the growth criterion compares fanout with its own 3-backend figure.")
        w("")
        w("| endpoint | server | backends | rounds | µs CPU per backend call | requests per core-second | "
          "req/s | p99 ms |")
        w("|---|---|---:|---:|---:|---:|---:|---:|")
        for ep in eps:
            for impl in ("fanout", "nginx"):
                for n in ns:
                    rs = select("backends", impl, n, ep)
                    if not rs:
                        continue
                    w(f"| {ep} | {IMPL_NAME[impl]} | {n} | {len(rs)} | {spread([us_per_call(r) for r in rs], 2)} | "
                      f"{spread([req_per_core_s(r) for r in rs], 0)} | "
                      f"{spread([f(r, 'requests') / f(r, 'duration_s') for r in rs], 0)} | "
                      f"{spread([f(r, 'p99_ms') for r in rs], 2)} |")
        w("")
        w("How to read it: with more backends the simulator (one thread) answers more calls per aggregate "
          "request, so the request rate falls and each of fanout's wake-ups finds fewer events ready: part of a "
          "rise in CPU per call can be fewer events per system call rather than more work per backend, and it "
          "grows with the machine's load (see `load` in growth.csv). The 1-backend figure carries a request's "
          "fixed cost (client connection, parsing, answer) on one call.")
        w("")
        w("Criterion (issue 24, item 5): fanout's CPU per backend call at 16 backends within "
          f"{BACKENDS_LIMIT}× of its 3-backend figure. Ratio per round: the 16-backend run over the "
          "3-backend run of the same round and endpoint.")
        w("")
        w("| target | endpoint | ratio per round | median (min–max) | |")
        w("|---|---|---|---:|---|")
        top = 16 if 16 in ns else max(ns)
        for ep in eps:
            a = by_round(select("backends", "fanout", 3, ep), us_per_call)
            b = by_round(select("backends", "fanout", top, ep), us_per_call)
            ratios = [b[k] / a[k] for k in sorted(a) if k in b and a[k] and b[k]]
            if 3 not in ns or not ratios:
                continue
            st = stats(ratios)
            w(f"| CPU per backend call, {top} / 3 backends ≤ {BACKENDS_LIMIT} | {ep} | "
              f"{', '.join(f'{x:.2f}' for x in ratios)} | {spread(ratios, 2)} | "
              f"{verdict(st[0], BACKENDS_LIMIT, st[3])} |")
        if 3 in ns and select("backends", "nginx", 3):
            parts = []
            for ep in eps:
                a = by_round(select("backends", "fanout", 3, ep), us_per_call)
                b = by_round(select("backends", "nginx", 3, ep), us_per_call)
                parts.append(f"{ep} {spread([a[k] / b[k] for k in sorted(a) if k in b and a[k] and b[k]], 2)}")
            w("")
            w("At 3 backends, CPU per request fanout / nginx + Lua (rounds' ratios): " + "; ".join(parts) + ".")
        w("")
        with open(os.path.join(out, "growth-backends.dat"), "w") as fh:
            fh.write("# backends, then per endpoint (" + " ".join(eps) + "): fanout median min max, "
                     f"nginx median min max (µs CPU per backend call; {conns} conns)\n")
            for n in ns:
                cols = [str(n)]
                for ep in eps:
                    for impl in ("fanout", "nginx"):
                        st = stats([us_per_call(r) for r in select("backends", impl, n, ep)])
                        cols += [f"{x:.4f}" for x in st[:3]] if st else ["NaN"] * 3
                fh.write(" ".join(cols) + "\n")
        made += plot(out, here, "backends", {
            "eps": " ".join(eps), "conns": conns, "run": run, "rounds": env.get("rounds", "?"),
            "limit": BACKENDS_LIMIT})
        if "backends" in made:
            w(f"![CPU per backend call by number of backends, {conns} connections, {run}](growth-backends.svg)  ")
            w(f"CPU per backend call by number of backends ({conns} connections, {run}; "
              "[SVG](growth-backends.svg), [PNG](growth-backends.png))")
            w("")

    # ---- body
    y_rows = select("body")
    if y_rows:
        eps = ordered(r["endpoint"] for r in y_rows)
        sizes = sorted({int(r["param"]) for r in y_rows})
        conns = env.get("body_conns", "?")
        w("## CPU per upstream MiB, bodies of " + ", ".join(size_label(s) for s in sizes))
        w("")
        w(f"Three upstreams (fanout-sim `--body-bytes SIZE`: a JSON list of records of about that size), "
          f"fanout and nginx + Lua on the same simulator, {conns} connections, {run}. `upstream bytes` = the "
          "three bodies of one aggregate request, read with curl before the runs. fanout validates every "
          "body as JSON and copies it into its answer; nginx + Lua only concatenates (and buffers a body "
          "larger than its proxy buffers to a temporary file).")
        w("")
        w("| endpoint | server | body | upstream bytes / request | rounds | ms CPU per upstream MiB | "
          "µs CPU per upstream call | requests per core-second | req/s |")
        w("|---|---|---|---:|---:|---:|---:|---:|---:|")
        for ep in eps:
            for s in sizes:
                for impl in ("fanout", "nginx"):
                    rs = select("body", impl, s, ep)
                    if not rs:
                        continue
                    w(f"| {ep} | {IMPL_NAME[impl]} | {size_label(s)} | {int(f(rs[0], 'upstream_bytes_per_request'))} | "
                      f"{len(rs)} | {spread([ms_per_mib(r) for r in rs], 2)} | {spread([us_per_call(r) for r in rs], 1)} | "
                      f"{spread([req_per_core_s(r) for r in rs], 0)} | "
                      f"{spread([f(r, 'requests') / f(r, 'duration_s') for r in rs], 0)} |")
        w("")
        top = max(sizes)
        w(f"Criterion (issue 24, item 5): fanout's CPU per upstream MiB at {size_label(top)} within {BODY_LIMIT}× "
          "of nginx + Lua's. Ratio per round: fanout's run over nginx + Lua's of the same round, size and endpoint.")
        w("")
        w("| target | endpoint | body | ratio per round | median (min–max) | |")
        w("|---|---|---|---|---:|---|")
        for ep in eps:
            for s in sizes:
                a = by_round(select("body", "fanout", s, ep), ms_per_mib)
                b = by_round(select("body", "nginx", s, ep), ms_per_mib)
                ratios = [a[k] / b[k] for k in sorted(a) if k in b and a[k] and b[k]]
                if not ratios:
                    continue
                st = stats(ratios)
                judged = verdict(st[0], BODY_LIMIT, st[3]) if s == top else "(reported)"
                w(f"| CPU per upstream MiB, fanout / nginx + Lua" + (f" ≤ {BODY_LIMIT}" if s == top else "") +
                  f" | {ep} | {size_label(s)} | {', '.join(f'{x:.2f}' for x in ratios)} | {spread(ratios, 2)} | {judged} |")
        spills = []
        for s in sizes:
            t, n = env.get(f"temp_files_nginx-{s}"), env.get(f"requests_nginx-{s}")
            if t and n and int(t) > 0:
                spills.append(f"{size_label(s)}: {int(t)} upstream answers written to temporary files over "
                              f"{int(n)} completed aggregate requests (warm-ups included)")
        if spills:
            w("")
            w("nginx + Lua's temporary files (its error.log's `buffered to a temporary file` warnings; the "
              "anchor's default proxy buffers, 8 × one page, with `proxy_buffering on`): " + "; ".join(spills) +
              ". Writing them (and reading them back) is part of its CPU per MiB here: it does not only copy "
              "in memory.")
        if not select("body", "nginx"):
            w("")
            w("nginx + Lua did not run: the criterion is not judged.")
        w("")
        with open(os.path.join(out, "growth-body.dat"), "w") as fh:
            fh.write("# body KiB, then per endpoint (" + " ".join(eps) + "): fanout median min max, "
                     f"nginx median min max (ms CPU per upstream MiB; {conns} conns)\n")
            for s in sizes:
                cols = [f"{s / 1024:g}"]
                for ep in eps:
                    for impl in ("fanout", "nginx"):
                        st = stats([ms_per_mib(r) for r in select("body", impl, s, ep)])
                        cols += [f"{x:.4f}" for x in st[:3]] if st else ["NaN"] * 3
                fh.write(" ".join(cols) + "\n")
        made += plot(out, here, "body", {"eps": " ".join(eps), "conns": conns, "run": run,
                                         "rounds": env.get("rounds", "?"), "limit": BODY_LIMIT})
        if "body" in made:
            w(f"![CPU per upstream MiB by body size, {conns} connections, {run}](growth-body.svg)  ")
            w(f"CPU per upstream MiB by body size ({conns} connections, {run}; "
              "[SVG](growth-body.svg), [PNG](growth-body.png))")
            w("")

    if not made and shutil.which("gnuplot") is None:
        w("(gnuplot not installed: no plots)")
        w("")
    bad = [r for r in rows if int(r["non2xx"]) or int(r["socket_errors"])]
    if bad:
        w("Runs with non-2xx answers or socket errors (their figures count every answer): " + "; ".join(
            f"{r['part']} {r['impl']}-{r['param']} {r['endpoint']} round {r['round']}: non-2xx {r['non2xx']}, "
            f"errors {r['socket_errors']}" for r in bad) + ".")
        w("")
    w("## Files")
    w("")
    w("`growth.csv` (one row per run: requests, server CPU from schedstat and from utime+stime, backend calls "
      "and upstream bytes per request), `growth.env` (settings), `growth-*.dat` (the plots' data); in the run's "
      "output directory also `raw/` (wrk, one sample answer per server and endpoint) and `logs/`.")
    w("")
    if failures:
        w("## Failures")
        w("")
        for x in failures:
            w(f"- {x}")
        w("")
    with open(os.path.join(out, "growth.md"), "w") as fh:
        fh.write("\n".join(md))
    print(os.path.join(out, "growth.md"))
    return 0


def plot(out, here, which, params):
    gp = shutil.which("gnuplot")
    if gp is None:
        return []
    defs = f"outdir='{out}'; which='{which}'; " + "; ".join(
        f"{k}='{v}'" if isinstance(v, str) else f"{k}={v}" for k, v in params.items())
    res = subprocess.run([gp, "-e", defs, os.path.join(here, "plot_growth.gp")],
                         capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        print(f"gnuplot {which}: {res.stderr.strip()}", file=sys.stderr)
        return []
    return [which] if os.path.exists(os.path.join(out, f"growth-{which}.svg")) else []


if __name__ == "__main__":
    sys.exit(main())
