#!/usr/bin/env python3
"""report.py OUTDIR - turn bench/run's runs.csv + machine.env into report.md and gnuplot plots.

Standard library only. Writes OUTDIR/report.md, OUTDIR/*.dat and, when gnuplot is installed,
OUTDIR/{throughput,latency,latency-b,concurrency}.{svg,png} (see plot.gp). When bench/resilience
ran (scenarios e-h: resilience.csv, outage.csv, tls.csv), report_resilience.py adds their section and plots;
when bench/growth ran (scenario i: growth.md), its sections follow.

With several rounds (runs.csv's `round` column, ROUNDS of bench/run) a cell (scenario, endpoint,
implementation, connections) shows the median of its rounds, a ratio between implementations is the
median of the rounds' ratios (both runs of a ratio from the same round) with their spread (min-max),
and a target of issue 24 is judged (PASS/MISS) only from at least MIN_ROUNDS rounds, as in
report_growth.py. A runs.csv without the `round` column is one round.
"""
import csv
import json
import re
import os
import shutil
import statistics
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in bench/
from report_growth import MIN_ROUNDS, spread, stats, verdict  # noqa: E402  (the same medians and verdicts)

ENDPOINTS = ["wg", "channel", "channel-with-context-timeout", "errgroup"]
SHORT = {"wg": "wg", "channel": "channel", "channel-with-context-timeout": "ctx-timeout", "errgroup": "errgroup"}
IMPL_NAME = {"fanout": "fanout (C++)", "go": "Go/Gin", "nginx": "nginx + Lua"}
PEERS = ("go", "nginx")  # the implementations fanout is compared with
PEER_SHORT = {"go": "Go", "nginx": "nginx-Lua"}


def scenario_note(sc, env, conns):
    """What to expect of a scenario: bounds derived from the run's settings, not measurements."""
    lat, dl = float(env.get("latency_ms", "5")), float(env.get("deadline_ms", "1000"))
    rate = float(env.get("error_rate", "0.1"))
    if sc == "a":
        return "The reference case: the figures to compare."
    if sc == "b":
        return (f"{lat:g} ms of upstream latency: c connections allow at most c / {lat:g} ms req/s ("
                + ", ".join(f"{c}: {c * 1000 / lat:,.0f}".replace(",", " ") for c in conns)
                + "); below that the run is CPU-bound.")
    if sc == "c":
        return ("wg and channel have no deadline: they are expected to answer nothing (wrk counts timeouts; whether the "
                "stuck requests and their upstream connections stay in the server after wrk has gone shows in `fds`). "
                "channel-with-context-timeout answers 200 with partial results at the deadline and errgroup 504, so each "
                f"connection completes about one request per deadline (c connections / {dl / 1000:g} s at most): "
                "latency ≈ the deadline. nginx + Lua: its deadline endpoints' 1 s proxy timeouts turn the hung "
                "subrequest into a 504 (`status` in `errors`), so its errgroup answers 502; its wait-for-all endpoints "
                "wait up to nginx's proxy_read_timeout (60 s).")
    if sc == "d":
        return ("wg, channel and ctx-timeout answer 200 with partial results; errgroup answers 502 whenever any of the "
                f"three upstreams failed (1 − (1 − {rate:g})³ ≈ {100 * (1 - (1 - rate) ** 3):.0f}% of requests), "
                "counted in non-2xx.")
    return None


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


GO_LIMIT, NGINX_LIMIT = 0.20, 0.70  # issue 24, item 1: CPU per request, fanout / the other
TARGET_CONNS, LATENCY_CONNS = 64, 16  # item 1: scenario a at 64 connections; item 4: scenario b at 16
SUMMED = ("err_connect", "err_read", "err_write", "err_timeout", "non2xx", "unanswered")  # counts
PEAK = ("server_hwm_kb",)  # the process's lifetime peak: the rounds' highest


def combine(rs):
    """One row standing for a cell's rounds: the median of each figure, except the counts of failed
    requests, summed (a failure in one round must not vanish in a median), and the peak RSS, the highest."""
    if len(rs) == 1:
        return rs[0]
    out = dict(rs[0])
    for k in rs[0]:
        if k in ("conns", "round"):
            continue
        vs = [v for v in (num(r, k) for r in rs) if v is not None]
        if not vs:
            continue
        if k in SUMMED:
            out[k] = str(int(sum(vs)))
        elif k in PEAK:
            out[k] = repr(max(vs))
        else:
            out[k] = repr(statistics.median(vs))
    out["round"] = f"median of {len(rs)}"
    return out


def quotient(x, y):
    return x / y if y else None


def difference(x, y):
    return x - y


class Runs:
    """runs.csv by cell (scenario, endpoint, implementation, connections), each cell's runs in round order."""

    def __init__(self, rows):
        self.rows = rows
        self.cells = {}
        for r in rows:
            if not r.get("round"):  # a runs.csv from before rounds: one round
                r["round"] = "1"
            self.cells.setdefault((r["scenario"], r["endpoint"], r["impl"], int(r["conns"])), []).append(r)
        self.combined = {}

    def get(self, sc, ep, impl, c):
        """The cell's run, or with several rounds one row of their medians (see combine)."""
        key = (sc, ep, impl, c)
        if key not in self.combined:
            rs = self.cells.get(key)
            self.combined[key] = combine(rs) if rs else None
        return self.combined[key]

    def conns_of(self, sc):
        return sorted({c for (s, _, _, c) in self.cells if s == sc})

    def rounds(self, sc=None):
        """The most rounds of a cell (of the scenario)."""
        return max((len(v) for k, v in self.cells.items() if sc is None or k[0] == sc), default=0)

    def per_round(self, sc, ep, impl, c, fn):
        """{round: fn(run)} over the cell's runs that completed requests and for which fn has a value."""
        out = {}
        for r in self.cells.get((sc, ep, impl, c), []):
            v = fn(r) if (num(r, "requests") or 0) > 0 else None
            if v is not None:
                out[r["round"]] = v
        return out

    def ratios(self, sc, ep, c, fn, a, b, op=quotient):
        """op(fn(a's run), fn(b's run)) for every round in which both ran, in round order."""
        x, y = self.per_round(sc, ep, a, c, fn), self.per_round(sc, ep, b, c, fn)
        vs = [op(x[k], y[k]) for k in sorted(x, key=int) if k in y]
        return [v for v in vs if v is not None]


def field(key):
    return lambda r: num(r, key)


def req_per_core_s(r):
    v = num(r, "server_cpu_per_1k")
    return 1000 / v if v else None


def us_per_call(r, calls):
    v = num(r, "server_cpu_per_1k")
    return v * 1000 / calls if v else None


def signed_spread(values, digits):
    """spread() of values that may be negative: signs shown, 'to' between min and max."""
    st = stats(values)
    if not st:
        return "–"
    med, lo, hi, n = st
    return f"{med:+.{digits}f}" + ("" if n == 1 else f" ({lo:+.{digits}f} to {hi:+.{digits}f})")


def judge(ok, rounds):
    """verdict() for a target that is not 'median ≤ limit'."""
    return verdict(0.0 if ok else 1.0, 0.0, rounds)


def rounds_note(m):
    n = m.rounds()
    if n <= 1:
        return (f"One round: the figures are those of single runs, and no target is judged (PASS/MISS needs at "
                f"least {MIN_ROUNDS} rounds: `ROUNDS={MIN_ROUNDS} bench/run`).")
    return (f"{n} rounds: each figure is the median of the rounds; each ratio is the median of the rounds' "
            "ratios, each taken within a round (the runs of a round are next to each other in time), with their "
            "spread (min–max) in brackets." + ("" if n >= MIN_ROUNDS else
                                               f" No target is judged from fewer than {MIN_ROUNDS} rounds."))


def issue24_section(w, m, env, scenarios, impls):
    """Items 1, 4 and 6 of issue 24, from this run's rounds."""
    lat = float(env.get("latency_ms", "5"))
    calls = int(env.get("upstreams", "3"))
    w("## Targets (issue 24)")
    w("")
    w(f"Side by side in this run. A target is judged on the median of the rounds' ratios (or differences), "
      f"each taken within a round, and only from at least {MIN_ROUNDS} rounds; with fewer its figures are shown "
      "and it is not judged.")
    w("")
    w("| target | endpoint | ratio per round | median (min–max) | |")
    w("|---|---|---|---:|---|")
    for peer, limit in (("go", GO_LIMIT), ("nginx", NGINX_LIMIT)):
        target = f"CPU per request fanout / {PEER_SHORT[peer]} ≤ {limit:.2f} (a, {TARGET_CONNS} conns)"
        if "a" not in scenarios or TARGET_CONNS not in m.conns_of("a"):
            w(f"| {target} | all | – | – | not measured (no scenario a at {TARGET_CONNS} connections) |")
            continue
        if peer not in impls:
            w(f"| {target} | all | – | – | not measured (no {IMPL_NAME[peer]} in this run) |")
            continue
        for ep in ENDPOINTS:
            rs = m.ratios("a", ep, TARGET_CONNS, field("server_cpu_per_1k"), "fanout", peer)
            st = stats(rs)
            w(f"| {target} | {ep} | {', '.join(f'{x:.2f}' for x in rs) or '–'} | {spread(rs, 2)} | "
              + (verdict(st[0], limit, st[3]) if st else "not measured (no run of both with requests)") + " |")
    w("")
    over = f"p99 − {lat:g} ms"
    target = f"{over} at {LATENCY_CONNS} conns (b), fanout ≤ nginx-Lua"
    w(f"Item 4, latency: the p99 overhead over the upstreams' {lat:g} ms (scenario b, {LATENCY_CONNS} connections), "
      "fanout's against nginx + Lua's; judged on the median of the rounds' differences fanout − nginx-Lua "
      "(ms, ≤ 0 to pass).")
    w("")
    w(f"| target | endpoint | fanout {over} (ms) | nginx-Lua {over} (ms) | fanout − nginx-Lua per round | "
      "median (min–max) | |")
    w("|---|---|---:|---:|---|---:|---|")
    if "b" not in scenarios or LATENCY_CONNS not in m.conns_of("b"):
        w(f"| {target} | all | – | – | – | – | not measured (no scenario b at {LATENCY_CONNS} connections) |")
    elif "nginx" not in impls:
        for ep in ENDPOINTS:
            f_ = m.per_round("b", ep, "fanout", LATENCY_CONNS, lambda r: num(r, "p99_ms") - lat)
            w(f"| {target} | {ep} | {spread(list(f_.values()), 2)} | – | – | – | not measured (no nginx + Lua) |")
    else:
        for ep in ENDPOINTS:
            p99 = field("p99_ms")
            f_ = m.per_round("b", ep, "fanout", LATENCY_CONNS, lambda r: num(r, "p99_ms") - lat)
            n_ = m.per_round("b", ep, "nginx", LATENCY_CONNS, lambda r: num(r, "p99_ms") - lat)
            ds = m.ratios("b", ep, LATENCY_CONNS, p99, "fanout", "nginx", op=difference)
            st = stats(ds)
            w(f"| {target} | {ep} | {spread(list(f_.values()), 2)} | {spread(list(n_.values()), 2)} | "
              f"{', '.join(f'{x:+.2f}' for x in ds) or '–'} | {signed_spread(ds, 2)} | "
              + (verdict(st[0], 0.0, st[3]) if st else "not measured (no run of both with requests)") + " |")
    w("")
    if "a" in scenarios and TARGET_CONNS in m.conns_of("a"):
        parts = []
        for ep in ENDPOINTS:
            rc = list(m.per_round("a", ep, "fanout", TARGET_CONNS, req_per_core_s).values())
            us = list(m.per_round("a", ep, "fanout", TARGET_CONNS, lambda r: us_per_call(r, calls)).values())
            if rc:
                parts.append(f"{ep} {spread(rc, 0)} requests per core-second, {spread(us, 1)} µs per upstream call")
        if parts:
            w(f"Item 6, the units of published gateway benchmarks (reported, no limit): fanout at {TARGET_CONNS} "
              "connections, scenario a: " + "; ".join(parts) + ". Every implementation and connection count: "
              "the next section.")
            w("")


def other_targets_section(w, m, env, scenarios, have_go, key_conns, out_dir):
    """The targets of the first benchmark (issue 4) that issue 24 did not replace (it replaced the CPU
    ratios and the latency overhead)."""
    rows = []
    if have_go and "a" in scenarios and key_conns in m.conns_of("a"):
        for ep in ENDPOINTS:
            rs = m.ratios("a", ep, key_conns, field("rps"), "fanout", "go")
            st = stats(rs)
            if st:
                rows.append((f"req/s ≥ 2.5 × Go ({ep}, a, {key_conns} conns)", f"{spread(rs, 2)} ×",
                             judge(st[0] >= 2.5, st[3])))
    if "a" in scenarios and 256 in m.conns_of("a"):
        hwms = [num(m.get("a", ep, "fanout", 256), "server_hwm_kb") for ep in ENDPOINTS if m.get("a", ep, "fanout", 256)]
        peak = max(v for v in hwms if v is not None)
        # a peak is a bound on the highest value seen, not a noisy figure: judged from any number of rounds
        rows.append(("peak RSS < 30 MiB at 256 conns (scenario a)", f"{peak / 1024:.1f} MiB",
                     "PASS" if peak < 30 * 1024 else "**MISS**"))
    soak = os.path.join(out_dir, "soak.csv")
    if os.path.exists(soak):
        with open(soak) as f:
            samples = [list(map(float, line.split(","))) for line in f.read().split("\n")[1:] if line]
        after = [s for s in samples if s[0] >= 10]
        if len(after) >= 2:
            growth = (after[-1][1] - after[0][1]) / 1024
            rows.append((f"no RSS growth over a {int(samples[-1][0])} s run at 256 conns (from 10 s on)",
                         f"{growth:+.1f} MiB", "PASS" if growth <= 1.0 else "**MISS**"))
    deadline = float(env.get("deadline_ms", "1000"))
    ep = "channel-with-context-timeout"
    if "c" in scenarios and "a" in scenarios and key_conns in m.conns_of("a"):
        hung, healthy = m.get("c", ep, "fanout", key_conns), m.get("a", ep, "fanout", key_conns)
        if hung and healthy:
            n = min(m.rounds("c"), m.rounds("a"))
            h, k = num(hung, "server_cpu_per_1k"), num(healthy, "server_cpu_per_1k")
            rows.append((f"hung service: CPU per request as in the healthy case ({ep})", f"{h:.4f} vs {k:.4f} s/1000",
                         judge(h <= 1.2 * k, n)))
            p99 = num(hung, "p99_ms")
            rows.append((f"hung service: p99 within 10% of the {deadline:g} ms deadline ({ep})", f"{p99:.0f} ms",
                         judge(p99 <= 1.1 * deadline, m.rounds("c"))))
    if not rows:
        return
    w("## Other targets (issue 4, the first benchmark)")
    w("")
    w("Those issue 24 did not replace (it replaced the CPU ratios and the latency overhead: above). Medians of "
      f"the rounds, judged only from at least {MIN_ROUNDS} rounds, except the peaks of memory (a bound on the "
      "highest value seen).")
    w("")
    w("| target | measured | |")
    w("|---|---:|---|")
    for target, measured, verdict_ in rows:
        w(f"| {target} | {measured} | {verdict_} |")
    w("")


def reading_notes(w, m, scenarios, impls, key_conns):
    """How to read the targets that tend to miss; every figure from this run."""
    w("How to read the targets that tend to miss:")
    w("")
    if "nginx" in impls:
        w("- **CPU vs nginx-Lua**: nginx's CPU is its master's plus its worker's (utime+stime of both; the master "
          "is idle). nginx-Lua does less per request than fanout: it concatenates the upstream bodies without "
          "validating them as JSON, and its wait-for-all endpoints have no deadline of their own. Where the "
          "difference goes (system calls and instructions per request): `bench/results/nginx-gap.md`.")
    w("- **A median near its limit**: the spread of the rounds' ratios shows how much the machine moved the "
      "figure during this run; a median within that spread of the limit is at the target within the noise. "
      "The instruction counts of `bench/callgrind` are the steadier measure of fanout's own cost.")
    w("- **Latency overhead**: `p99 − latency` includes more than the server: the slowest of three upstream "
      "answers (each at the simulator's latency plus its timer and scheduling delay), with the one-threaded "
      "simulator serving three times the request rate. nginx + Lua's overhead, on the same simulator in the "
      "same rounds, is the yardstick (item 4).")
    ep = "channel-with-context-timeout"
    if "c" in scenarios and "a" in scenarios and key_conns in m.conns_of("a"):
        parts = []
        for impl in impls:
            h, k = m.get("c", ep, impl, key_conns), m.get("a", ep, impl, key_conns)
            hc, kc = num(h, "server_cpu_per_1k") if h else None, num(k, "server_cpu_per_1k") if k else None
            if hc and kc:
                parts.append(f"{PEER_SHORT.get(impl, impl)} {hc / kc:.1f} ×")
        wg, to = m.get("a", "wg", "fanout", key_conns), m.get("a", ep, "fanout", key_conns)
        cost = ""
        if wg and to and num(wg, "server_cpu_per_1k") and num(to, "server_cpu_per_1k"):
            cost = (f" Timers and cancellation themselves are cheap: in scenario a, {ep} costs "
                    f"{num(to, 'server_cpu_per_1k') / num(wg, 'server_cpu_per_1k'):.2f} × wg's CPU per request.")
        w("- **Hung service, CPU per request**: each request must open a new connection to the hung service "
          "(the one a timed-out fetch used is closed: its late answer could still arrive on it), and at one "
          "request per deadline per connection the fixed costs are spread over few requests. CPU per request, "
          f"hung ({ep}, scenario c) / healthy (scenario a), in this run: " + (", ".join(parts) or "–") + "." + cost)
    w("")


def published_units_section(w, env, m, impls):
    """Every scenario-a cell in the units of published gateway benchmarks."""
    calls = int(env.get("upstreams", "3"))
    multi = m.rounds("a") > 1
    w("## Scenario a in the units of published gateway benchmarks")
    w("")
    w(f"Every scenario-a run: **requests per core-second** = requests / the server's CPU seconds (utime+stime; "
      f"1000 / `srv CPU s/1k`), and **µs of CPU per upstream call** = the server's CPU per request / {calls} "
      "(each aggregate request calls every upstream once). "
      + (f"Medians of the {m.rounds('a')} rounds, with their spread (min–max). " if multi else
         "Figures of single runs (one round). ")
      + "The machine's cores also run wrk and the simulator, so compare them with published figures as orders "
      "of magnitude, and with each other side by side.")
    w("")
    w("| endpoint | conns | " + " | ".join(f"{PEER_SHORT.get(i, i)} req per core-s" for i in impls) + " | "
      + " | ".join(f"{PEER_SHORT.get(i, i)} µs CPU per upstream call" for i in impls) + " |")
    w("|---|---:|" + "---:|" * (2 * len(impls)))
    for c in m.conns_of("a"):
        for ep in ENDPOINTS:
            if not any(m.get("a", ep, i, c) for i in impls):
                continue
            rc = [list(m.per_round("a", ep, i, c, req_per_core_s).values()) for i in impls]
            us = [list(m.per_round("a", ep, i, c, lambda r: us_per_call(r, calls)).values()) for i in impls]
            w(f"| {ep} | {c} | " + " | ".join(spread(v, 0) for v in rc) + " | "
              + " | ".join(spread(v, 1) for v in us) + " |")
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


def matrix_section(w, env, m, scenarios, desc, impls):
    w("## Matrix")
    w("")
    w("| scenario | upstreams (fanout-sim) | connections | endpoints | implementations | run (warm-up) |")
    w("|---|---|---|---|---|---|")
    for sc in scenarios:
        if sc == "c":
            dur = f"{env.get('hung_duration_s', '?')} s (none)"
        else:
            dur = f"{env.get('duration_s', '?')} s ({env.get('warmup_s', '?')} s)"
        w(f"| {sc} | {desc[sc]} | {', '.join(str(c) for c in m.conns_of(sc))} | all 4 | "
          f"{', '.join(IMPL_NAME[i] for i in impls)} | {dur} |")
    w("")
    n = m.rounds()
    w(f"{len(m.rows)} runs" + (f", {n} rounds: a round runs every (connections, endpoint) of a scenario once, "
                              "and the rounds follow one another" if n > 1 else "") + ". "
      "Runs alternate between the implementations (their order rotates from one endpoint to the next: fanout, "
      "Go, nginx; then Go, nginx, fanout; ..." + ("; and from one round to the next" if n > 1 else "") + ") "
      "so that drift in the machine's load affects all alike. Each scenario starts fresh processes (simulator and "
      "servers), so the peak RSS (VmHWM, the process lifetime peak) covers that scenario's runs so far; VmRSS is "
      "taken after each run.")
    w("")
    w(rounds_note(m))
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

    m = Runs(rows)
    get, conns_of = m.get, m.conns_of

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
        matrix_section(w, env, m, scenarios, desc, impls)
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
              + " | ".join(spread(m.ratios("a", ep, key_conns, field("rps"), "fanout", p), 2) for p in peers) + " | "
              + " | ".join(fmt(v[i][1], 4) for i in impls) + " | "
              + " | ".join(spread(m.ratios("a", ep, key_conns, field("server_cpu_per_1k"), "fanout", p), 2)
                           for p in peers) + " |")
        w("")
        w("req/s ratio above 1: fanout serves more; CPU ratio below 1: fanout spends less CPU per request."
          + (f" Medians of {m.rounds('a')} rounds; the ratios are the medians of the rounds' ratios (min–max)."
             if m.rounds("a") > 1 else ""))
        w("")

    if rows:
        issue24_section(w, m, env, scenarios, impls)
    if "a" in scenarios:
        published_units_section(w, env, m, impls)
    other_targets_section(w, m, env, scenarios, have_go, key_conns, out)
    if rows:
        reading_notes(w, m, scenarios, impls, key_conns)

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
          "`RSS` = VmRSS after the run / VmHWM, MiB; `fds` = open file descriptors of the server after the run."
          + (f" {m.rounds()} rounds: every figure is the median of the cell's rounds, except `errors`, `non-2xx` "
             "and `unanswered`, summed over them, and HWM, their highest." if m.rounds() > 1 else ""))
        w("")
    for sc in scenarios:
        w(f"### Scenario {sc}: {desc[sc]}")
        w("")
        note = scenario_note(sc, env, conns_of(sc))
        if note:
            w(note)
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
                      f"{int(num(r, 'server_fds') or 0)} | {fmt(num(r, 'loadavg1'), 2, '')} |")
        w("")

    if peers:
        names = " and ".join(f"fanout / {PEER_SHORT[p]}" for p in peers)
        w(f"## Ratios {names}, all runs")
        w("")
        w("req/s and ok req/s: above 1 = fanout faster; CPU per 1000 requests and p99: below 1 = fanout better. "
          "`–` where a side completed no request."
          + (" The median of the rounds' ratios, each taken within a round, and their spread (min–max)."
             if m.rounds() > 1 else ""))
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
                    cells = [spread(m.ratios(sc, ep, c, field(key), "fanout", p), 2) for _, key in cols for p in peers]
                    w(f"| {sc} | {ep} | {c} | " + " | ".join(cells) + " |")
        w("")

    # ---- plots
    plots = write_plot_data(out, rows, impls, key_conns, conns_of, get, scenarios)
    lat = env.get("latency_ms", "5")
    run = f"{env.get('duration_s', '?')} s runs after a {env.get('warmup_s', '?')} s warm-up" + (
        f", medians of {m.rounds()} rounds" if m.rounds() > 1 else "")
    notes = {p: (f"{key_conns} connections, " if p != "concurrency" else "") + run for p in plots}
    made = run_gnuplot(out, here, plots, impls, notes, lat)
    if made:
        w("## Plots")
        w("")
        titles = {
            "throughput": f"Throughput by endpoint, scenario a, {key_conns} connections, {run}",
            "latency": f"Latency percentiles by endpoint, scenario a, {key_conns} connections, {run}",
            "latency-b": f"Latency percentiles by endpoint, scenario b ({lat} ms upstreams), {key_conns} connections, {run}",
            "concurrency": f"Throughput by number of connections, scenario a, {run}",
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
        w("`runs.csv` (one row per run, all measurements, its round in `round`), `machine.env` (machine and settings), "
          "`raw/<scenario>_<impl>_<endpoint>_c<conns>_r<round>.txt` (wrk output; the `WRKSUMMARY` line is exact µs "
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


def run_gnuplot(out, here, plots, impls, notes, lat):
    gp = shutil.which("gnuplot")
    if gp is None or not plots:
        return []
    made = []
    for p in plots:
        cmd = [gp, "-e", f"outdir='{out}'; which='{p}'; impls='{' '.join(impls)}'; note='{notes[p]}'; lat_ms='{lat}'",
               os.path.join(here, "plot.gp")]
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
