"""report_resilience.py - the report section of the resilience scenarios e, f, g and the TLS scenario h
(bench/resilience).

report.py calls section(OUTDIR, BENCH_DIR) when OUTDIR has resilience.csv, outage.csv or tls.csv; it returns
the Markdown lines and writes the plots' data (resilience-*.dat) and, with gnuplot, the plots
(resilience-e, resilience-f-<mode>, resilience-g; SVG + PNG, see plot_resilience.gp).
Standard library only.
"""
import csv
import os
import re
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import fmt, num, sample_summary  # noqa: E402  (the same number formats as the main report)

SHORT = {"wg": "wg", "channel": "channel", "channel-with-context-timeout": "ctx-timeout", "errgroup": "errgroup"}


def read_env(path):
    env = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    env[k] = v
    return env


def read_csv(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def pct(v, digits=1):
    return "–" if v is None else f"{100 * v:+.{digits}f}%"


def lat(row, key):
    """A latency as recorded (wrk-raw.lua: without wrk's coordinated-omission correction), else wrk's."""
    v = num(row, "raw_" + key) if row else None
    return v if v is not None else (num(row, key) if row else None)


def verdict(ok):
    return "PASS" if ok else "**MISS**"


def key_value(keys, name):
    m = re.search(r'"%s"\s*:\s*([0-9.]+)' % re.escape(name), keys or "")
    return float(m.group(1)) if m else None


def section(out, here):
    env = read_env(os.path.join(out, "resilience.env"))
    res = read_csv(os.path.join(out, "resilience.csv"))
    outage = read_csv(os.path.join(out, "outage.csv"))
    tls = read_csv(os.path.join(out, "tls.csv"))
    md = []
    w = md.append
    plots = []
    w("## Resilience scenarios: fanout against fanout")
    w("")
    w("bench/resilience: the same fanout binary with two configuration files (`configs/`), run by run "
      "alternately (the order swaps from one pair to the next), each run on a fresh `fanout-sim` (with "
      "`--counters`, printed at its exit) and a fresh fanout "
      f"(`{env.get('fanout_args', '')}`), wrk `{env.get('wrk', '')}`. "
      "Only the side-by-side comparison of the two configurations is meaningful.")
    w("")
    targets = []
    if any(r["scenario"] == "e" for r in res):
        md.extend(section_e(out, env, [r for r in res if r["scenario"] == "e"], targets, plots))
    if outage:
        md.extend(section_f(out, env, outage, targets, plots))
    if any(r["scenario"] == "g" for r in res):
        md.extend(section_g(out, env, [r for r in res if r["scenario"] == "g"], targets, plots))
    if tls:
        md.extend(section_h(out, env, tls, targets))
    if targets:
        w("### Resilience targets")
        w("")
        w("| target | measured | |")
        w("|---|---:|---|")
        for t, m, v in targets:
            w(f"| {t} | {m} | {v} |")
        w("")
    made = run_gnuplot(out, here, plots, env)
    if made:
        w("### Resilience plots")
        w("")
        for name, title in made:
            w(f"![{title}]({name}.svg)  ")
            w(f"{title} ([SVG]({name}.svg), [PNG]({name}.png))")
            w("")
    w("Files: `resilience.csv` (e and g, one row per run: wrk figures, fanout's CPU, the aggregate requests "
      "fanout handled from its /metrics, fanout-sim's counters), `outage.csv` (f, one row per run), "
      "`timeline_f_<mode>_<config>.csv` (f: /metrics and CPU every "
      f"{env.get('f_sample_s', '?')} s), `tls.csv` (h, one row per run), `resilience.env` (settings), `configs/`, "
      "`tls/` (h's CA, certificates and keys, made for the run), `raw/` (wrk), `logs/` "
      "(fanout's JSON log, fanout-sim's output with its counters).")
    w("")
    failures = os.path.join(out, "resilience_failures.txt")
    if os.path.exists(failures):
        lines = [l.strip() for l in open(failures) if l.strip()]
        if lines:
            w("Failures of bench/resilience:")
            w("")
            for l in lines:
                w(f"- {l}")
            w("")
    return md


def section_e(out, env, rows, targets, plots):
    md = []
    w = md.append
    w("### Scenario e: heavy tail, hedged requests")
    w("")
    w(f"fanout-sim `{env.get('e_sim', '?')}`: every answer after the base latency, a few after the tail's; "
      "an aggregate request waits for the slowest of its three fetches, so about 3 times the tail ratio of "
      "aggregate requests land in the tail. fanout `plain` (configs/e_plain.json) vs `hedged`: "
      f"`{env.get('hedge_keys', '?')}` on every upstream (configs/e_hedged.json). "
      f"{env.get('duration_s', '?')} s runs after a {env.get('warmup_s', '?')} s warm-up. "
      "p50/p90/p99: each request counted once, as recorded (`wrk-raw.lua` undoes wrk's coordinated-omission "
      "correction, which adds a synthetic sample at every mean interval below each slow answer and so moves a "
      "heavy tail's weight into p90/p99); `wrk p99`: wrk's corrected figure, for reference. "
      "`upstream/agg` = upstream requests the simulator read / aggregate requests fanout handled (answered, "
      "plus those cancelled when wrk closed its connections), warm-up included; `extra` = upstream/agg ÷ 3 − 1: "
      "what hedging adds (the plain run shows the measurement's zero).")
    w("")
    w("| endpoint | conns | config | req/s | p50 ms | p90 ms | p99 ms | wrk p99 ms | max ms | non-2xx | errors | "
      "fanout CPU s/1k | upstream/agg | extra |")
    w("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    keys = []
    for r in rows:
        k = (r["endpoint"], r["conns"])
        if k not in keys:
            keys.append(k)
    skipped_note = None
    for ep, c in keys:
        for cfg in ("plain", "hedged"):
            r = next((x for x in rows if x["endpoint"] == ep and x["conns"] == c and x["config"] == cfg), None)
            if r is None:
                continue
            if r["status"] == "skipped":
                skipped_note = r["note"]
                w(f"| {ep} | {c} | {cfg} | skipped | | | | | | | | | | |")
                continue
            errs = sum(int(num(r, k_) or 0) for k_ in ("err_connect", "err_read", "err_write", "err_timeout"))
            w(f"| {ep} | {c} | {cfg} | {fmt(num(r, 'rps'))} | {fmt(lat(r, 'p50_ms'), 2)} | {fmt(lat(r, 'p90_ms'), 2)} | "
              f"{fmt(lat(r, 'p99_ms'), 2)} | {fmt(num(r, 'p99_ms'), 2)} | {fmt(num(r, 'max_ms'), 1)} | "
              f"{int(num(r, 'non2xx') or 0)} | {errs} | "
              f"{fmt(num(r, 'server_cpu_per_1k'), 4)} | {fmt(num(r, 'upstream_per_agg'), 3)} | "
              f"{pct(num(r, 'extra_upstream'))} |")
    w("")
    if skipped_note:
        w(f"**The hedged half was skipped**: {skipped_note}. The keys `hedge_after_ms`, `hedge_quantile`, "
          "`hedge_budget` are read by fanout once hedging is in (fanout refuses unknown keys); until then only "
          "the plain half runs and the targets below cannot be checked.")
        w("")
    with open(os.path.join(out, "resilience-e.dat"), "w") as f:
        f.write("# label plain_p50 plain_p90 plain_p99 hedged_p50 hedged_p90 hedged_p99 (ms)\n")
        for ep, c in keys:
            cols = []
            for cfg in ("plain", "hedged"):
                r = next((x for x in rows if x["endpoint"] == ep and x["conns"] == c and x["config"] == cfg
                          and x["status"] == "ok"), None)
                for p in ("p50_ms", "p90_ms", "p99_ms"):
                    v = lat(r, p)
                    cols.append("NaN" if v is None else f"{v:.3f}")
            f.write(f'"{SHORT.get(ep, ep)} c{c}" ' + " ".join(cols) + "\n")
    plots.append(("resilience-e", "Scenario e: latency percentiles with and without hedging (log scale)"))
    for ep, c in keys:
        p_ = next((x for x in rows if x["endpoint"] == ep and x["conns"] == c and x["config"] == "plain"
                   and x["status"] == "ok"), None)
        h_ = next((x for x in rows if x["endpoint"] == ep and x["conns"] == c and x["config"] == "hedged"), None)
        where = f"{ep}, {c} conns"
        if h_ is None or h_["status"] != "ok":
            targets.append((f"e: p99 without / with hedging ≥ 3 ({where})", "hedged run skipped", "–"))
            targets.append((f"e: extra upstream requests with hedging ≤ 10% ({where})", "hedged run skipped", "–"))
            continue
        a, b = lat(p_, "p99_ms"), lat(h_, "p99_ms")
        if a is not None and b:
            targets.append((f"e: p99 without / with hedging ≥ 3 ({where})", f"{a:.1f} / {b:.1f} ms = {a / b:.2f} ×",
                            verdict(a / b >= 3)))
        x = num(h_, "extra_upstream")
        if x is not None:
            targets.append((f"e: extra upstream requests with hedging ≤ 10% ({where})", pct(x), verdict(x <= 0.10)))
    return md


def section_f(out, env, rows, targets, plots):
    md = []
    w = md.append
    cooldown = key_value(env.get("breaker_keys"), "breaker_cooldown_ms")
    after, span = env.get("outage_after_s", "?"), env.get("outage_for_s", "?")
    w("### Scenario f: an outage, circuit breaker")
    w("")
    w(f"`{env.get('outage_service', '?')}` goes down {after} s after the simulator started, for {span} s, then "
      "recovers: `refuse` = port closed and its connections reset (a crashed process), `hang` = requests read "
      f"and never answered (a stuck one). Load throughout: {env.get('f_conns', '?')} connections on each of "
      f"{env.get('f_endpoints', '?')}, `?timeout_ms={env.get('f_timeout_ms', '?')}`. fanout `plain` (no breaker) vs "
      f"`breaker`: `{env.get('breaker_keys', '?')}` on every upstream. fanout's /metrics and utime+stime sampled every "
      f"{env.get('f_sample_s', '?')} s: healthy window = up to {env.get('f_healthy_s', '?')} s before the outage (from 1 s "
      "after wrk started), outage window = the outage; both keep "
      f"{env.get('f_edge_s', '?')} s away from the outage's start and end (the simulator's outage clock starts a few "
      f"tens of ms after the time taken as its start, and the samples are {env.get('f_sample_s', '?')} s apart: a "
      "healthy sample inside the outage window would weigh much when the outage's rate is low); requests = answers "
      "fanout sent in the window, any status. Recovery (± 0.05 s): from the outage's end to the breaker's `{\"event\":\"circuit_breaker\",...,\"state\":\"closed\"}` log line (`breaker closed`), and "
      "to the first sample from which fanout counts no more failures of the service (`last failure`, an upper "
      "bound to the sampling interval; with the breaker it includes the `circuit_open` failures).")
    w("")
    w("| mode | config | healthy req/s | healthy CPU s/1k | outage req/s | outage 2xx | outage CPU s/1k | "
      "outage/healthy CPU | breaker opened (s after start) | breaker closed (s after end) | last failure (s after end) | "
      "wrk answers / non-2xx / errors | healthy breakers opened | load |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for r in rows:
        ok = num(r, "outage_ok_share")
        w(f"| {r['mode']} | {r['config']} | {fmt(num(r, 'healthy_rps'))} | {fmt(num(r, 'healthy_cpu_per_1k'), 4)} | "
          f"{fmt(num(r, 'outage_rps'))} | {'–' if ok is None else f'{100 * ok:.0f}%'} | "
          f"{fmt(num(r, 'outage_cpu_per_1k'), 4)} | {fmt(num(r, 'cpu_ratio'), 2)} | "
          f"{r.get('breaker_opened_after_s') or '–'} | {r.get('breaker_closed_after_s') or '–'} | "
          f"{r.get('last_failure_after_s') or '–'} | {r.get('wrk_requests', '')} / {r.get('wrk_non2xx', '')} / "
          f"{r.get('wrk_errors', '')} | {r.get('other_breaker_opens', '')} | {r.get('loadavg1', '')} |")
    w("")
    others = sum(int(num(r, "other_breaker_opens") or 0) for r in rows)
    if others:
        w(f"**Warning**: the breaker opened {others} time(s) on a service that was not out (timeouts of "
          f"{env.get('f_timeout_ms', '?')} ms on a healthy upstream: the machine was too busy to schedule the "
          "simulator in time: see the `load` column). Those runs' figures are not trustworthy.")
        w("")
    w("Expected: without a breaker a refused service costs a failed connect per request, and a hung one holds "
      "each request to its deadline (ctx-timeout answers 200 partial, errgroup 504) while opening a new connection "
      "for each fetch; with the breaker open its fetches fail at once (`circuit_open`), one probe per cooldown.")
    w("")
    for r in rows:
        if r["config"] != "breaker":
            continue
        x = num(r, "cpu_ratio")
        if x is not None:
            targets.append((f"f: with breaker, CPU per request outage / healthy ≤ 1.5 ({r['mode']})", f"{x:.2f} ×",
                            verdict(x <= 1.5)))
        rec = num(r, "breaker_closed_after_s")
        limit = (cooldown or 0) / 1000 + 1
        if cooldown is not None:
            targets.append((f"f: with breaker, recovery ≤ cooldown + 1 s = {limit:g} s ({r['mode']})",
                            "not closed" if rec is None else f"{rec:.2f} s", verdict(rec is not None and rec <= limit)))
    for mode in dict.fromkeys(r["mode"] for r in rows):
        n = write_timeline_dat(out, mode, env)
        if n:
            plots.append((f"resilience-f-{mode}", f"Scenario f ({mode}): answers per second and fanout's CPU, "
                          f"{env.get('outage_service', '?')} out from {after} s for {span} s (shaded)"))
    return md


def write_timeline_dat(out, mode, env, step=5):
    """resilience-f-MODE-CONFIG.dat: t (s after the simulator's start), answers/s, CPU % of a core,
    failures/s of the service; over `step` samples (0.5 s at the default interval)."""
    made = 0
    tck = float(os.sysconf("SC_CLK_TCK"))
    outage = read_csv(os.path.join(out, "outage.csv"))
    for cfg in ("plain", "breaker"):
        path = os.path.join(out, f"timeline_f_{mode}_{cfg}.csv")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            samples = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
        if len(samples) <= step:
            continue
        # times relative to the simulator's start (outage.csv's t0), else to the first sample
        row = next((r for r in outage if r["mode"] == mode and r["config"] == cfg), None)
        t0 = num(row, "t0") if row else None
        if t0 is None:
            t0 = samples[0]["t"]
        with open(os.path.join(out, f"resilience-f-{mode}-{cfg}.dat"), "w") as f:
            f.write("# t_s answers_per_s cpu_pct failures_per_s\n")
            for a, b in zip(samples[0::step], samples[step::step]):
                d = b["t"] - a["t"]
                if d <= 0:
                    continue
                f.write(f"{(a['t'] + b['t']) / 2 - t0:.2f} {(b['answered'] - a['answered']) / d:.1f} "
                        f"{100 * (b['cpu_ticks'] - a['cpu_ticks']) / tck / d:.1f} "
                        f"{(b['svc_failures'] - a['svc_failures']) / d:.1f}\n")
        made += 1
    return made


def section_g(out, env, rows, targets, plots):
    md = []
    w = md.append
    w("### Scenario g: deadline propagation")
    w("")
    w(f"fanout-sim `--deadline-header {env.get('deadline_header', '?')} {env.get('g_sim', '?')}`: a request's work "
      "goes on after the caller has left, as real work does; work past the caller's budget is counted "
      f"(`late_work_ms`). `?timeout_ms={env.get('g_timeout_ms', '?')}`: the tail's work outlives fanout's deadline. "
      f"fanout `header` sends its time left in `{env.get('deadline_header', '?')}` (its default), and the simulator "
      "honours it (`--honour-deadline`: it stops at the budget and answers 504); fanout `no-header` "
      "(`\"deadline_header\": \"\"`) sends none, so the simulator cannot know when to stop: it learns the budget "
      f"from `--budget-ms {env.get('g_timeout_ms', '?')}` only to count the late work (fanout-sim's "
      "`--honour-deadline` would also stop at `--budget-ms`, i.e. as if told, so it is not given in this half). "
      "Per 1000 aggregate requests fanout handled (warm-up included, as the counters are).")
    w("")
    w("| endpoint | conns | config | req/s | p50 ms | p99 ms | non-2xx | fanout CPU s/1k | upstream/agg | "
      "late work ms (total) | late work ms / 1000 req | deadline stops / 1000 req |")
    w("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    keys = []
    for r in rows:
        k = (r["endpoint"], r["conns"])
        if k not in keys:
            keys.append(k)
    for ep, c in keys:
        for cfg in ("header", "no-header"):
            r = next((x for x in rows if x["endpoint"] == ep and x["conns"] == c and x["config"] == cfg), None)
            if r is None or r["status"] != "ok":
                continue
            w(f"| {ep} | {c} | {cfg} | {fmt(num(r, 'rps'))} | {fmt(lat(r, 'p50_ms'), 2)} | {fmt(lat(r, 'p99_ms'), 2)} | "
              f"{int(num(r, 'non2xx') or 0)} | {fmt(num(r, 'server_cpu_per_1k'), 4)} | {fmt(num(r, 'upstream_per_agg'), 3)} | "
              f"{fmt(num(r, 'sim_late_work_ms'))} | {fmt(num(r, 'late_ms_per_1k'), 1)} | {fmt(num(r, 'stops_per_1k'), 1)} |")
    w("")
    w("Expected without the header: about 3 × (tail ratio) × (tail − deadline) ms of late work per request; "
      "with it, none (the work stops at the budget, counted in deadline stops).")
    w("")
    with open(os.path.join(out, "resilience-g.dat"), "w") as f:
        f.write("# label header_late_ms_per_1k no_header_late_ms_per_1k\n")
        for ep, c in keys:
            cols = []
            for cfg in ("header", "no-header"):
                r = next((x for x in rows if x["endpoint"] == ep and x["conns"] == c and x["config"] == cfg
                          and x["status"] == "ok"), None)
                v = num(r, "late_ms_per_1k") if r else None
                cols.append("NaN" if v is None else f"{v:.1f}")
            f.write(f'"{SHORT.get(ep, ep)} c{c}" ' + " ".join(cols) + "\n")
    plots.append(("resilience-g", "Scenario g: upstream work after fanout's deadline, per 1000 requests"))
    return md


def section_h(out, env, rows, targets):
    md = []
    w = md.append
    ok = [r for r in rows if r["status"] == "ok"]
    w("### Scenario h: TLS upstreams")
    w("")
    w(f"fanout `plain` (configs/h_plain.json: `http://` upstreams) vs `tls` (configs/h_tls.json: `https://` upstreams on "
      f"{env.get('h_tls_ports', '?')}, `ca_file` = a CA made for this run, verification on), over fanout-sim "
      f"`{env.get('h_sim') or '(answering at once)'}`, the tls half with `--tls-cert/--tls-key` (an EC P-256 "
      f"certificate for IP:127.0.0.1 and DNS:localhost; {env.get('openssl_version', '?')}). "
      f"{env.get('h_rounds', '?')} round(s); in each, every endpoint runs once per configuration, the order swapping "
      "from one endpoint and one round to the next; each run on a fresh simulator and a fresh fanout. One wrk per run, "
      f"measured in a window of {env.get('duration_s', '?')} s from {env.get('h_warmup_s', '?')} s in (the pool warm, "
      "no client leaving in between): fanout's CPU (utime+stime) and `/metrics` read at both ends of the window, "
      "per 1000 aggregate requests answered in it.")
    w("")
    w("What this measures: what fetching over TLS costs fanout per request once its upstream connections are open. "
      "With a warm pool the handshakes are rare (the `handshakes / 1k` columns), so the difference is mostly the "
      "record layer: encrypting each upstream request and decrypting each answer, the extra copies through "
      "OpenSSL's buffers, and the reads and writes it splits or merges. It does not measure "
      "connection set-up (a cold pool, or connections lost to cancelled fetches: a cancelled fetch closes its TLS "
      "connection, and the next one is a resumed handshake), nor the simulator's own TLS cost (its CPU is in "
      "`tls.csv`, `sim_cpu_per_1k`). req/s share 2 cores between wrk, the simulator and fanout: only CPU per request "
      "is fanout's own figure.")
    w("")
    checks = []
    for cfg, label in (("tls", "with the run's CA"), ("wrong-ca", "with a `ca_file` of another CA (must fail: `tls`)")):
        path = os.path.join(out, "raw", f"sample_h_{cfg}.txt")
        if os.path.exists(path):
            checks.append(f"{label}: {sample_summary(path)}")
    if checks:
        w("Verification check, one `wg` answer each before the runs (`raw/sample_h_*.txt`): " + "; ".join(checks) + ".")
        w("")
    s_client = os.path.join(out, "raw", "h_s_client.txt")
    if os.path.exists(s_client):
        got = dict(re.findall(r"^(Protocol version|Ciphersuite|Server Temp Key): (.+)$", open(s_client).read(), re.M))
        if got:
            w("Negotiated with the simulator by `openssl s_client` with the library's defaults, which fanout keeps "
              "(it sets only TLS ≥ 1.2): " + ", ".join(f"{k.lower()} {v}" for k, v in got.items()) +
              " (`raw/h_s_client.txt`).")
            w("")
    skipped = next((r for r in rows if r["status"] == "skipped"), None)
    if skipped:
        w(f"**The tls half was skipped**: {skipped['note']}.")
        w("")
    keys = []
    for r in rows:
        k = (r["endpoint"], r["conns"])
        if k not in keys:
            keys.append(k)

    def med(vals):
        vals = [v for v in vals if v is not None]
        return statistics.median(vals) if vals else None

    def runs(ep, c, cfg):
        return [r for r in ok if r["endpoint"] == ep and r["conns"] == c and r["config"] == cfg]

    w("| endpoint | conns | plain CPU s/1k | tls CPU s/1k | tls / plain | plain req/s | tls req/s | "
      "tls full handshakes / 1k | tls resumed / 1k | opened / 1k plain | opened / 1k tls | rounds |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for ep, c in keys:
        p_, t_ = runs(ep, c, "plain"), runs(ep, c, "tls")
        ratios = []
        for rnd in dict.fromkeys(r["round"] for r in p_):
            a = next((num(r, "server_cpu_per_1k") for r in p_ if r["round"] == rnd), None)
            b = next((num(r, "server_cpu_per_1k") for r in t_ if r["round"] == rnd), None)
            if a and b is not None:
                ratios.append(b / a)
        ratio = med(ratios)

        def m(rs, key, digits):
            return fmt(med([num(r, key) for r in rs]), digits)

        w(f"| {ep} | {c} | {m(p_, 'server_cpu_per_1k', 4)} | {m(t_, 'server_cpu_per_1k', 4)} | "
          f"{fmt(ratio, 3)} | {m(p_, 'rps', 0)} | {m(t_, 'rps', 0)} | {m(t_, 'full_per_1k', 3)} | "
          f"{m(t_, 'resumed_per_1k', 3)} | {m(p_, 'opened_per_1k', 3)} | {m(t_, 'opened_per_1k', 3)} | {len(ratios)} |")
        where = f"{ep}, {c} conns"
        if ratio is None:
            targets.append((f"h: fanout CPU per request, TLS / plain ≤ 1.3, warm pool ({where})",
                            "tls half skipped" if skipped else "no pair of runs", "–"))
        else:
            targets.append((f"h: fanout CPU per request, TLS / plain ≤ 1.3, warm pool ({where})",
                            f"{ratio:.2f} × (median of {len(ratios)})", verdict(ratio <= 1.3)))
    w("")
    w("Medians over the rounds; `tls / plain` is the median of each round's ratio (the two runs of a round are "
      "next to each other in time). Handshakes and connections opened: in the window, summed over the three "
      "services, per 1000 aggregate requests (each makes 3 upstream requests); the plain half's handshakes are 0. "
      "A connection is counted as opened when the fetch that opened it ends, a handshake when it completes: "
      "near the window's edges a few can fall on either side.")
    w("")
    w("All runs:")
    w("")
    w("| round | endpoint | conns | config | req/s | 2xx | fanout CPU s/1k | sim CPU s/1k | opened / 1k | "
      "full / 1k | resumed / 1k | upstream failures | wrk p50 / p99 ms | wrk non-2xx / errors | "
      "sim handshakes full / resumed / failed | load |")
    w("|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---:|")
    for r in ok:
        share = num(r, "ok_share")
        hs = "–" if r["config"] == "plain" else f"{r['sim_tls_full']} / {r['sim_tls_resumed']} / {r['sim_tls_failed']}"
        w(f"| {r['round']} | {r['endpoint']} | {r['conns']} | {r['config']} | {fmt(num(r, 'rps'))} | "
          f"{'–' if share is None else f'{100 * share:.0f}%'} | {fmt(num(r, 'server_cpu_per_1k'), 4)} | "
          f"{fmt(num(r, 'sim_cpu_per_1k'), 4)} | {fmt(num(r, 'opened_per_1k'), 3)} | {fmt(num(r, 'full_per_1k'), 3)} | "
          f"{fmt(num(r, 'resumed_per_1k'), 3)} | {r['upstream_failures']} | "
          f"{fmt(num(r, 'wrk_p50_ms'), 2)} / {fmt(num(r, 'wrk_p99_ms'), 2)} | {r['wrk_non2xx']} / {r['wrk_errors']} | "
          f"{hs} | {r['loadavg1']} |")
    w("")
    w("wrk's figures and the simulator's counters cover the whole run (warm-up included), the others the window.")
    w("")
    bad = [r for r in ok if (num(r, "upstream_failures") or 0) > 0 or (num(r, "sim_tls_failed") or 0) > 0]
    if bad:
        w(f"**Warning**: {len(bad)} run(s) had upstream failures in the window or failed handshakes at the simulator "
          "(`logs/fanout_h_*.log`, `logs/sim_h_*.log`): their CPU figures include failing fetches.")
        w("")
    return md


def run_gnuplot(out, here, plots, env):
    gp = shutil.which("gnuplot")
    if gp is None or not plots:
        return []
    made = []
    res = read_csv(os.path.join(out, "resilience.csv"))
    hedged = any(r["scenario"] == "e" and r["config"] == "hedged" and r["status"] == "ok" for r in res)
    for name, title in plots:
        which = name[len("resilience-"):]
        have = {cfg: os.path.exists(os.path.join(out, f"{name}-{cfg}.dat")) for cfg in ("plain", "breaker")}
        cmd = [gp, "-e", f"outdir='{out}'; which='{which}'; after={env.get('outage_after_s', '0')}; "
               f"span={env.get('outage_for_s', '0')}; hedged={int(hedged)}; plain={int(have['plain'])}; "
               f"breaker={int(have['breaker'])}", os.path.join(here, "plot_resilience.gp")]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            print(f"gnuplot {name}: {done.stderr.strip()}", file=sys.stderr)
            continue
        if os.path.exists(os.path.join(out, name + ".svg")):
            made.append((name, title))
    return made
