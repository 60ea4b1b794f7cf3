#!/usr/bin/env python3
"""report.py OUTDIR - turn bench/run's runs.csv + machine.env into report.md and gnuplot plots.

Standard library only. Writes OUTDIR/report.md, OUTDIR/*.dat and, when gnuplot is installed,
OUTDIR/{throughput,latency,latency-b,concurrency}.{svg,png} (see plot.gp). When bench/resilience
ran (scenarios e-h: resilience.csv, outage.csv, tls.csv), report_resilience.py adds their section and plots;
when bench/growth ran (scenario i: growth.md), its sections follow.
"""
import csv
import json
import re
import os
import shutil
import subprocess
import sys

ENDPOINTS = ["wg", "channel", "channel-with-context-timeout", "errgroup"]
SHORT = {"wg": "wg", "channel": "channel", "channel-with-context-timeout": "ctx-timeout", "errgroup": "errgroup"}
IMPL_NAME = {"fanout": "fanout (C++)", "go": "Go/Gin", "nginx": "nginx + Lua"}
PEERS = ("go", "nginx")  # the implementations fanout is compared with
PEER_SHORT = {"go": "Go", "nginx": "nginx-Lua"}
SCENARIO_NOTE = {
    "a": "The reference case: the figures to compare.",
    "b": "5 ms of upstream latency: 64 connections allow at most 64 / 5 ms = 12.8k req/s; below that the run is CPU-bound.",
    "c": "wg and channel have no deadline: they are expected to answer nothing (wrk counts timeouts; whether the "
         "stuck requests and their upstream connections stay in the server after wrk has gone shows in `fds`). channel-with-context-timeout answers 200 with "
         "partial results at the deadline and errgroup 504, so each connection completes about one request per "
         "deadline (64 connections / 1 s = at most 64 req/s): latency ≈ the deadline. nginx + Lua: its deadline "
         "endpoints' 1 s proxy timeouts turn the hung subrequest into a 504 (`status` in `errors`), so its errgroup "
         "answers 502; its wait-for-all endpoints wait up to nginx's proxy_read_timeout (60 s).",
    "d": "wg, channel and ctx-timeout answer 200 with partial results; errgroup answers 502 whenever any of the "
         "three upstreams failed (1 - 0.9³ ≈ 27% of requests), counted in non-2xx.",
}


def read_env(path):
    env = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if "=" in line:
                    k, v = line.split("=", 1)
                    env[k] = v
    return env


def targets_section(w, get, conns_of, scenarios, have_go, key_conns, out_dir, have_nginx=False):
    """The targets of the performance issue, each checked against this run's figures."""
    rows = []

    def add(target, measured, ok):
        rows.append((target, measured, "PASS" if ok else "**MISS**"))

    if have_go and "a" in scenarios and key_conns in conns_of("a"):
        for ep in ENDPOINTS:
            f_, g_ = get("a", ep, "fanout", key_conns), get("a", ep, "go", key_conns)
            if not f_ or not g_:
                continue
            cpu = num(f_, "server_cpu_per_1k") / num(g_, "server_cpu_per_1k")
            rps = num(f_, "rps") / num(g_, "rps")
            add(f"CPU per request ≤ 0.25 × Go ({ep}, a, {key_conns} conns)", f"{cpu:.2f} ×", cpu <= 0.25)
            add(f"req/s ≥ 2.5 × Go ({ep}, a, {key_conns} conns)", f"{rps:.2f} ×", rps >= 2.5)
    if have_nginx and "a" in scenarios and key_conns in conns_of("a"):
        for ep in ENDPOINTS:
            f_, n_ = get("a", ep, "fanout", key_conns), get("a", ep, "nginx", key_conns)
            if not f_ or not n_ or not num(n_, "server_cpu_per_1k"):
                continue
            cpu = num(f_, "server_cpu_per_1k") / num(n_, "server_cpu_per_1k")
            add(f"CPU per request ≤ 0.75 × nginx-Lua ({ep}, a, {key_conns} conns)", f"{cpu:.2f} ×", cpu <= 0.75)
    if "b" in scenarios and 16 in conns_of("b"):
        for ep in ENDPOINTS:
            f_ = get("b", ep, "fanout", 16)
            if f_:
                over = num(f_, "p99_ms") - 5.0
                add(f"p99 − 5 ms < 1 ms ({ep}, upstreams at 5 ms, 16 conns)", f"{over:.2f} ms", over < 1.0)
    if "a" in scenarios and 256 in conns_of("a"):
        peak = max(num(get("a", ep, "fanout", 256), "server_hwm_kb") for ep in ENDPOINTS if get("a", ep, "fanout", 256))
        add("peak RSS < 30 MiB at 256 conns (scenario a)", f"{peak / 1024:.1f} MiB", peak < 30 * 1024)
    soak = os.path.join(out_dir, "soak.csv")
    if os.path.exists(soak):
        with open(soak) as f:
            samples = [list(map(float, line.split(","))) for line in f.read().split("\n")[1:] if line]
        after = [s for s in samples if s[0] >= 10]
        if len(after) >= 2:
            growth = (after[-1][1] - after[0][1]) / 1024
            add(f"no RSS growth over a {int(samples[-1][0])} s run at 256 conns (from 10 s on)",
                f"{growth:+.1f} MiB", growth <= 1.0)
    if "c" in scenarios and "a" in scenarios and key_conns in conns_of("a"):
        ep = "channel-with-context-timeout"
        hung, healthy = get("c", ep, "fanout", key_conns), get("a", ep, "fanout", key_conns)
        if hung and healthy:
            h, k = num(hung, "server_cpu_per_1k"), num(healthy, "server_cpu_per_1k")
            add(f"hung service: CPU per request as in the healthy case ({ep})", f"{h:.4f} vs {k:.4f} s/1000",
                h <= 1.2 * k)
            p99 = num(hung, "p99_ms")
            add(f"hung service: p99 within 10% of the 1000 ms deadline ({ep})", f"{p99:.0f} ms", p99 <= 1100)
    if not rows:
        return
    w("## Targets")
    w("")
    w("| target | measured | |")
    w("|---|---:|---|")
    for target, measured, verdict in rows:
        w(f"| {target} | {measured} | {verdict} |")
    w("")
    w("How to read the ones that tend to miss:")
    w("")
    if have_nginx:
        w("- **CPU vs nginx-Lua**: nginx's CPU is its master's plus its worker's (utime+stime of both; the master "
          "is idle). nginx-Lua does less per request than fanout: it concatenates the upstream bodies without "
          "validating them as JSON, and its wait-for-all endpoints have no deadline of their own. Both make "
          "about 11 system calls per request: the difference is in user space (`nginx-gap.md`).")
    w("- **CPU ratio near 0.25**: Go's own CPU per request varies by about ±5% from run to run on this "
      "machine, so a ratio of 0.25-0.26 is at the target within the noise; the instruction counts of "
      "`bench/callgrind` are the steadier measure of fanout's own cost.")
    w("- **Latency overhead**: `p99 − 5 ms` includes more than fanout: the slowest of three upstream answers "
      "(each at 5 ms plus the simulator's timer and scheduling delay), with the one-threaded simulator serving "
      "three times the request rate. A single upstream alone at 16 connections measured p50 5.13 ms, "
      "p99 5.36 ms here; compare fanout's p50/p99 with that, and with Go's in the same table.")
    w("- **Hung service, CPU per request**: each request must open a new connection to the hung service "
      "(the one a timed-out fetch used is closed: its late answer could still arrive on it), and at one "
      "request per deadline per connection the fixed costs are spread over few requests. Go pays the same, "
      "about four times more; timers and cancellation themselves are cheap (scenario a's deadline endpoints "
      "cost about 10% more than wg per request).")
    w("")


def published_units_section(w, env, rows, impls, conns_of, get):
    """Every scenario-a run in the units of published gateway benchmarks."""
    calls = int(env.get("upstreams", "3"))
    w("## Scenario a in the units of published gateway benchmarks")
    w("")
    w(f"Every scenario-a run: **requests per core-second** = requests / the server's CPU seconds (utime+stime; "
      f"1000 / `srv CPU s/1k`), and **µs of CPU per upstream call** = the server's CPU per request / {calls} "
      "(each aggregate request calls every upstream once). Figures of this one run (no rounds: see "
      "`bench/growth` for the medians of alternating rounds); the machine's 2 cores also run wrk and the "
      "simulator, so compare them with published figures as orders of magnitude, and with each other side by side.")
    w("")
    w("| endpoint | conns | " + " | ".join(f"{PEER_SHORT.get(i, i)} req per core-s" for i in impls) + " | "
      + " | ".join(f"{PEER_SHORT.get(i, i)} µs CPU per upstream call" for i in impls) + " |")
    w("|---|---:|" + "---:|" * (2 * len(impls)))
    for c in conns_of("a"):
        for ep in ENDPOINTS:
            r = {i: get("a", ep, i, c) for i in impls}
            if not any(r.values()):
                continue
            per_1k = {i: num(r[i], "server_cpu_per_1k") if r[i] and (num(r[i], "requests") or 0) > 0 else None
                      for i in impls}
            w(f"| {ep} | {c} | " + " | ".join(fmt(1000 / v) if v else "–" for v in per_1k.values()) + " | "
              + " | ".join(fmt(v * 1000 / calls, 1) if v else "–" for v in per_1k.values()) + " |")
    w("")


def num(row, key):
    try:
        return float(row.get(key, ""))
    except (TypeError, ValueError):
        return None


def fmt(v, digits=0, empty="–"):
    if v is None:
        return empty
    if digits == 0:
        return f"{v:,.0f}".replace(",", " ")
    return f"{v:.{digits}f}"


def ratio(a, b, digits=2):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.{digits}f}"


def errs(row):
    parts = []
    for key, label in (("err_connect", "connect"), ("err_read", "read"), ("err_write", "write"),
                       ("err_timeout", "timeout")):
        v = int(num(row, key) or 0)
        if v:
            parts.append(f"{label} {v}")
    return ", ".join(parts) if parts else "0"


def sample_summary(path):
    """One answer taken with curl before the runs: 'status, which services failed and how'."""
    if not os.path.exists(path):
        return "–"
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    m = re.search(r"curl exit (\d+) \(no answer within ([0-9.]+)s\)", text)
    if m and not text.startswith("HTTP/"):
        return f"no answer within {m.group(2)} s"
    # the last response in the output (curl -i prints one head per response)
    heads = [h for h in re.split(r"\r?\n\r?\n", text) if h.startswith("HTTP/")]
    status = heads[-1].split("\r\n")[0].split("\n")[0].split(" ", 1)[1] if heads else "?"
    body = text[text.rfind("\n") + 1:] if "\n" in text else text
    detail = ""
    try:
        doc = json.loads(body)
        errors = doc.get("errors") or {}
        if errors:
            parts = []
            for svc, e in errors.items():
                kind = e.get("kind") if isinstance(e, dict) else str(e)
                parts.append(f"{svc}: {kind}")
            detail = "; errors " + ", ".join(parts)
        results = doc.get("results") or {}
        detail = f"; {len(results)} results" + detail
    except (ValueError, AttributeError):
        pass
    return status + detail


def matrix_section(w, env, rows, scenarios, desc, conns_of, impls):
    w("## Matrix")
    w("")
    w("| scenario | upstreams (fanout-sim) | connections | endpoints | implementations | run (warm-up) |")
    w("|---|---|---|---|---|---|")
    for sc in scenarios:
        if sc == "c":
            dur = f"{env.get('hung_duration_s', '?')} s (none)"
        else:
            dur = f"{env.get('duration_s', '?')} s ({env.get('warmup_s', '?')} s)"
        w(f"| {sc} | {desc[sc]} | {', '.join(str(c) for c in conns_of(sc))} | all 4 | "
          f"{', '.join(IMPL_NAME[i] for i in impls)} | {dur} |")
    w("")
    w(f"{len(rows)} runs. Runs alternate between the implementations "
      "(their order rotates from one endpoint to the next: fanout, Go, nginx; then Go, nginx, fanout; ...) "
      "so that drift in the machine's load affects all alike. Each scenario starts fresh processes (simulator and servers), so the peak RSS "
      "(VmHWM, the process lifetime peak) covers that scenario's runs so far; VmRSS is taken after each run.")
    w("")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    env = read_env(os.path.join(out, "machine.env"))
    rows = []
    if os.path.exists(os.path.join(out, "runs.csv")):  # absent when bench/resilience ran alone
        with open(os.path.join(out, "runs.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
    failures = []
    fpath = os.path.join(out, "failures.txt")
    if os.path.exists(fpath):
        failures = [l.strip() for l in open(fpath) if l.strip()]

    impls = [i for i in ("fanout", "go", "nginx") if any(r["impl"] == i for r in rows)]
    have_go = "go" in impls
    have_nginx = "nginx" in impls
    peers = [p for p in PEERS if p in impls]
    scenarios = []
    for r in rows:
        if r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])
    desc = {r["scenario"]: r["scenario_desc"] for r in rows}
    key_conns = int(env.get("conns", "64"))

    def get(sc, ep, impl, c):
        for r in rows:
            if r["scenario"] == sc and r["endpoint"] == ep and r["impl"] == impl and int(r["conns"]) == c:
                return r
        return None

    def conns_of(sc):
        cs = []
        for r in rows:
            if r["scenario"] == sc and int(r["conns"]) not in cs:
                cs.append(int(r["conns"]))
        return sorted(cs)

    loads = [num(r, "loadavg1") for r in rows if num(r, "loadavg1") is not None]
    md = []
    w = md.append
    w(f"# fanout benchmark: {env.get('date', '?')}" + (" (quick smoke run)" if env.get("mode") == "quick" else ""))
    w("")
    w("**Absolute numbers are specific to this machine and to what else ran on it at the time; only the "
      "side-by-side ratios (fanout vs the Go/Gin original and nginx + Lua, measured alternately on the same "
      "upstreams, with the same wrk settings) are meaningful.** On 2 cores wrk, the upstream simulator and the server "
      "under test share the CPUs, so req/s and latency mostly show how the cores were split; "
      "the server CPU seconds per 1000 requests are the steadier figure.")
    w("")
    w("## Machine")
    w("")
    w(f"- date: {env.get('date', '?')}; total time of the run: {env.get('elapsed_s', '?')} s")
    w(f"- CPU: {env.get('cpu_model', '?')}, nproc {env.get('nproc', '?')} ({env.get('lscpu_summary', '')})")
    w(f"- memory: {env.get('mem', '?')}; kernel: {env.get('uname', '?')}; CLK_TCK {env.get('clk_tck', '?')}, "
      f"sched_autogroup {env.get('sched_autogroup', '?')}")
    if loads:
        w(f"- load average (1 min): {env.get('loadavg_start', '?')} at the start, {env.get('loadavg_end', '?')} at the end, "
          f"{min(loads):.2f}–{max(loads):.2f} at the start of the runs (column `load`). The load includes the "
          "benchmark itself (wrk + simulator + server ≈ 2–3); more than that, or a large `other` CPU column, "
          "means another workload (e.g. a compile) competed for the cores during that run.")
    w(f"- fanout: {env.get('fanout_version', '?')} at git {env.get('git_rev', '?')}"
      f" ({env.get('git_dirty_files', '?')} files modified outside bench/; {env.get('build', '?')}), "
      f"{env.get('compiler', '?')}, Release; "
      f"`--threads {env.get('fanout_threads', '?')} {env.get('fanout_args', '')}`")
    if not rows:
        pass  # bench/resilience alone: fanout only
    elif have_go:
        w(f"- Go/Gin original: `{env.get('anchors', '?')}` go-seed, {env.get('go_version', '?')}, "
          f"GOMAXPROCS {env.get('go_maxprocs', '?')}, `-timeout {env.get('deadline_ms', '?')}ms`")
    else:
        w("- Go/Gin original: not available (../shared/anchors absent or not built): no Go columns")
    if not rows:
        pass
    elif have_nginx:
        w(f"- nginx + Lua: `{env.get('nginx_lua', '?')}/run.sh` (one worker, `ngx.location.capture_multi` over "
          f"keep-alive upstream pools, bodies concatenated without JSON validation, 1 s proxy timeouts on the "
          f"deadline endpoints), {env.get('nginx_version', '?')}; CPU = master + worker")
    else:
        w(f"- nginx + Lua: {env.get('nginx_version', 'not available')}: no nginx columns")
    if rows:
        w(f"- load generator: {env.get('wrk_version', '?')}, `wrk {env.get('wrk', '')} -c<conns> -d<run>` "
          f"after a warm-up run (see the matrix); upstreams: `fanout-sim` (one process, one thread, 3 ports) for all servers")
    else:
        w(f"- load generator: {env.get('wrk_version', '?')}")
    w("")
    if rows:
        matrix_section(w, env, rows, scenarios, desc, conns_of, impls)
    if peers and "a" in scenarios and key_conns in conns_of("a"):
        w(f"## Key figures: scenario a, {key_conns} connections")
        w("")
        w("| endpoint | " + " | ".join(f"{PEER_SHORT.get(i, i)} req/s" for i in impls) + " | "
          + " | ".join(f"req/s fanout/{PEER_SHORT[p]}" for p in peers) + " | "
          + " | ".join(f"{PEER_SHORT.get(i, i)} CPU s/1000 req" for i in impls) + " | "
          + " | ".join(f"CPU fanout/{PEER_SHORT[p]}" for p in peers) + " |")
        w("|---|" + "---:|" * (2 * len(impls) + 2 * len(peers)))
        for ep in ENDPOINTS:
            r = {i: get("a", ep, i, key_conns) for i in impls}
            if not r["fanout"]:
                continue
            v = {i: (num(r[i], "rps"), num(r[i], "server_cpu_per_1k")) if r[i] else (None, None) for i in impls}
            w(f"| {ep} | " + " | ".join(fmt(v[i][0]) for i in impls) + " | "
              + " | ".join(ratio(v["fanout"][0], v[p][0]) for p in peers) + " | "
              + " | ".join(fmt(v[i][1], 4) for i in impls) + " | "
              + " | ".join(ratio(v["fanout"][1], v[p][1]) for p in peers) + " |")
        w("")
        w("req/s ratio above 1: fanout serves more; CPU ratio below 1: fanout spends less CPU per request.")
        w("")

    if "a" in scenarios:
        published_units_section(w, env, rows, impls, conns_of, get)

    targets_section(w, get, conns_of, scenarios, have_go, key_conns, out, have_nginx)

    if rows:
        w("## Results by scenario")
        w("")
        w("Columns: `ok req/s` counts only 2xx/3xx answers; latencies from wrk (completed requests only); "
          "`srv`, `sim`, `other` = CPU seconds per 1000 requests of the server under test, of fanout-sim "
          "(3 upstream requests per aggregate request) and of everything else on the machine except wrk "
          "(near 0 when nothing competed); `opens/req` = new TCP connections opened on the machine per request "
          "(/proc/net/snmp ActiveOpens, minus wrk's own connections; about 0 when the server reuses pooled upstream "
          "connections, up to 3 when it opens a new one per fetch); `errors` = wrk socket errors and timeouts "
          "(wrk counts as a timeout only an answer that arrived later than --timeout: a request never answered is "
          "counted nowhere by wrk, hence the `unanswered` column of scenario c: requests sent and not answered when "
          "wrk stopped, counted by wrk-count.lua); "
          "`RSS` = VmRSS after the run / VmHWM, MiB; `fds` = open file descriptors of the server after the run.")
        w("")
    for sc in scenarios:
        w(f"### Scenario {sc}: {desc[sc]}")
        w("")
        if sc in SCENARIO_NOTE:
            w(SCENARIO_NOTE[sc])
            w("")
        w("One answer per endpoint, taken with curl before the runs (`raw/sample_*`):")
        w("")
        w("| endpoint | " + " | ".join(IMPL_NAME[i] for i in impls) + " |")
        w("|---|" + "---|" * len(impls))
        for ep in ENDPOINTS:
            cells = [sample_summary(os.path.join(out, "raw", f"sample_{sc}_{i}_{ep}.txt")) for i in impls]
            w(f"| {ep} | " + " | ".join(c.replace("|", "/") for c in cells) + " |")
        w("")
        counted = any(r["scenario"] == sc and r.get("unanswered", "") != "" for r in rows)
        w("| endpoint | conns | impl | req/s | ok req/s | p50 ms | p90 ms | p99 ms | max ms | srv CPU s/1k | sim s/1k | "
          "other s/1k | opens/req | errors | non-2xx | " + ("unanswered | " if counted else "") + "RSS / HWM MiB | fds | load |")
        w("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|" + ("---:|" if counted else "") + "---|---:|---:|")
        for c in conns_of(sc):
            for ep in ENDPOINTS:
                for impl in impls:
                    r = get(sc, ep, impl, c)
                    if not r:
                        continue
                    n = num(r, "requests") or 0
                    opens = num(r, "tcp_active_opens")
                    opr = None if not n or opens is None else max(opens - c, 0) / n
                    has = n > 0
                    w(f"| {ep} | {c} | {impl} | {fmt(num(r, 'rps'))} | {fmt(num(r, 'ok_rps'))} | "
                      f"{fmt(num(r, 'p50_ms'), 2) if has else '–'} | {fmt(num(r, 'p90_ms'), 2) if has else '–'} | "
                      f"{fmt(num(r, 'p99_ms'), 2) if has else '–'} | {fmt(num(r, 'max_ms'), 1) if has else '–'} | "
                      f"{fmt(num(r, 'server_cpu_per_1k'), 4)} | {fmt(num(r, 'sim_cpu_per_1k'), 4)} | "
                      f"{fmt(num(r, 'other_cpu_per_1k'), 4)} | {fmt(opr, 2)} | {errs(r)} | {int(num(r, 'non2xx') or 0)} | "
                      + (f"{r.get('unanswered', '')} | " if counted else "") +
                      f"{(num(r, 'server_rss_kb') or 0) / 1024:.1f} / {(num(r, 'server_hwm_kb') or 0) / 1024:.1f} | "
                      f"{int(num(r, 'server_fds') or 0)} | {r.get('loadavg1', '')} |")
        w("")

    if peers:
        names = " and ".join(f"fanout / {PEER_SHORT[p]}" for p in peers)
        w(f"## Ratios {names}, all runs")
        w("")
        w("req/s and ok req/s: above 1 = fanout faster; CPU per 1000 requests and p99: below 1 = fanout better. "
          "`–` where a side completed no request.")
        w("")
        cols = [("req/s", "rps"), ("ok req/s", "ok_rps"), ("CPU s/1000 req", "server_cpu_per_1k"), ("p99", "p99_ms")]
        w("| scenario | endpoint | conns | " + " | ".join(f"{label} /{PEER_SHORT[p]}" for label, _ in cols for p in peers) + " |")
        w("|---|---|---:|" + "---:|" * (len(cols) * len(peers)))
        for sc in scenarios:
            for c in conns_of(sc):
                for ep in ENDPOINTS:
                    f_ = get(sc, ep, "fanout", c)
                    if not f_:
                        continue
                    cells = []
                    for _, key in cols:
                        for p in peers:
                            g_ = get(sc, ep, p, c)
                            both = g_ is not None and (num(f_, "requests") or 0) > 0 and (num(g_, "requests") or 0) > 0
                            cells.append(ratio(num(f_, key), num(g_, key)) if both else "–")
                    w(f"| {sc} | {ep} | {c} | " + " | ".join(cells) + " |")
        w("")

    # ---- plots
    plots = write_plot_data(out, rows, impls, key_conns, conns_of, get, scenarios)
    made = run_gnuplot(out, here, plots, impls)
    if made:
        w("## Plots")
        w("")
        titles = {
            "throughput": f"Throughput by endpoint, scenario a, {key_conns} connections",
            "latency": f"Latency percentiles by endpoint, scenario a, {key_conns} connections",
            "latency-b": f"Latency percentiles by endpoint, scenario b (5 ms upstreams), {key_conns} connections",
            "concurrency": "Throughput by number of connections, scenario a",
        }
        for p in made:
            w(f"![{titles[p]}]({p}.svg)  ")
            w(f"{titles[p]} ([SVG]({p}.svg), [PNG]({p}.png))")
            w("")
    elif shutil.which("gnuplot") is None:
        w("(gnuplot not installed: no plots)")
        w("")

    res_md = resilience_section(out, here)
    md.extend(res_md)
    md.extend(growth_section(out))

    if rows:
        w("## Files")
        w("")
        w("`runs.csv` (one row per run, all measurements), `machine.env` (machine and settings), "
          "`raw/<scenario>_<impl>_<endpoint>_c<conns>.txt` (wrk output; the `WRKSUMMARY` line is exact µs "
          "figures from wrk-summary.lua), `raw/sample_*` (one answer per endpoint, headers included), `logs/`.")
        w("")
    if failures:
        w("## Failures")
        w("")
        for f_ in failures:
            w(f"- {f_}")
        w("")

    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(md))
    print(os.path.join(out, "report.md"))
    return 0


def write_plot_data(out, rows, impls, key_conns, conns_of, get, scenarios):
    plots = []

    def val(r, key):
        if r is None or not (num(r, "requests") or 0):
            return "NaN"
        v = num(r, key)
        return "NaN" if v is None else f"{v:.3f}"

    def impl_cols(sc, ep, c, keys):
        cols = []
        for impl in ("fanout", "go", "nginx"):
            r = get(sc, ep, impl, c) if impl in impls else None
            cols += [val(r, k) for k in keys]
        return cols

    if "a" in scenarios and key_conns in conns_of("a"):
        with open(os.path.join(out, "throughput.dat"), "w") as f:
            f.write("# endpoint fanout_rps go_rps nginx_rps   (scenario a, %d connections)\n" % key_conns)
            for ep in ENDPOINTS:
                f.write(" ".join([SHORT[ep]] + impl_cols("a", ep, key_conns, ["rps"])) + "\n")
        plots.append("throughput")
    for sc, name in (("a", "latency"), ("b", "latency-b")):
        if sc in scenarios and key_conns in conns_of(sc):
            with open(os.path.join(out, name + ".dat"), "w") as f:
                f.write("# endpoint fanout_p50 fanout_p90 fanout_p99 go_p50 go_p90 go_p99 nginx_p50 nginx_p90 nginx_p99"
                        " (ms; scenario %s, %d connections)\n"
                        % (sc, key_conns))
                for ep in ENDPOINTS:
                    f.write(" ".join([SHORT[ep]] + impl_cols(sc, ep, key_conns, ["p50_ms", "p90_ms", "p99_ms"])) + "\n")
            plots.append(name)
    if "a" in scenarios and len(conns_of("a")) > 1:
        with open(os.path.join(out, "concurrency.dat"), "w") as f:
            f.write("# conns " + " ".join(f"{i}_{SHORT[ep]}" for i in ("fanout", "go", "nginx") for ep in ENDPOINTS) + "\n")
            for c in conns_of("a"):
                cols = []
                for impl in ("fanout", "go", "nginx"):
                    for ep in ENDPOINTS:
                        cols.append(val(get("a", ep, impl, c) if impl in impls else None, "rps"))
                f.write(" ".join([str(c)] + cols) + "\n")
        plots.append("concurrency")
    return plots


def run_gnuplot(out, here, plots, impls):
    gp = shutil.which("gnuplot")
    if gp is None or not plots:
        return []
    made = []
    for p in plots:
        cmd = [gp, "-e", f"outdir='{out}'; which='{p}'; impls='{' '.join(impls)}'", os.path.join(here, "plot.gp")]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            print(f"gnuplot {p}: {res.stderr.strip()}", file=sys.stderr)
            continue
        if os.path.exists(os.path.join(out, p + ".svg")):
            made.append(p)
    return made


def growth_section(out):
    """Scenario i (bench/growth), when it ran: its growth.md, one heading level down."""
    path = os.path.join(out, "growth.md")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = f.read().split("\n")
    first = next((k for k, line in enumerate(lines) if line.startswith("## ")), len(lines))
    md = ["## Growth with backends and body size (scenario i)", "",
          "`bench/growth`: its own rounds, settings and files in [growth.md](growth.md); its sections follow.", ""]
    md += ["#" + line if line.startswith("#") else line for line in lines[first:]]
    return md


def resilience_section(out, here):
    """Scenarios e-h (bench/resilience), when they ran: report_resilience.py beside this file."""
    if not any(os.path.exists(os.path.join(out, f)) for f in ("resilience.csv", "outage.csv", "tls.csv")):
        return []
    sys.path.insert(0, here)
    sys.dont_write_bytecode = True  # no __pycache__ in bench/
    import report_resilience
    return report_resilience.section(out, here)


if __name__ == "__main__":
    sys.exit(main())
