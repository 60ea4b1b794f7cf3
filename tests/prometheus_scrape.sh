#!/bin/sh
# The demo's /metrics as Prometheus 2.42 reads it: promtool check metrics on the 0.0.4 text (its
# linter parses no other format), then a real Prometheus with exemplar storage scraping the
# OpenMetrics page, which must find the trace id of a request as an exemplar of the request
# histogram. Exit 77 (skipped) without promtool and prometheus (Debian: prometheus).
set -eu
fanout="$1"
command -v promtool >/dev/null && command -v prometheus >/dev/null ||
    { echo "promtool or prometheus is not installed (Debian: prometheus)"; exit 77; }
work=$(mktemp -d)
"$fanout" --listen 127.0.0.1:0 --threads 2 --access-log >"$work/fanout.log" 2>&1 &
fanout_pid=$!
prometheus_pid=""
trap 'kill $fanout_pid $prometheus_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do grep -q '^listening on ' "$work/fanout.log" && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$work/fanout.log")
[ -n "$url" ]
trace=0af7651916cd43dd8448eb211c80319c
curl -sf --max-time 5 -H "traceparent: 00-$trace-b7ad6b7169203331-01" "$url/api/aggregate/wg" >/dev/null

curl -sf --max-time 5 "$url/metrics" | promtool check metrics
echo "promtool check metrics: 0.0.4 text clean"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/prometheus.yml" <<YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: fanout
    static_configs:
      - targets: ["${url#http://}"]
YML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
    --web.listen-address="127.0.0.1:$port" --enable-feature=exemplar-storage >"$work/prometheus.log" 2>&1 &
prometheus_pid=$!
api="http://127.0.0.1:$port/api/v1"
found=""
for _ in $(seq 300); do
    now=$(date +%s)
    if curl -sf --max-time 2 "$api/query_exemplars?query=fanout_request_duration_seconds_bucket&start=$((now - 600))&end=$((now + 60))" \
        2>/dev/null | grep -q "\"trace_id\":\"$trace\""; then
        found=yes
        break
    fi
    sleep 0.1
done
targets=$(curl -sf --max-time 2 "$api/targets" || true)
echo "$targets" | grep -o '"lastError":"[^"]*"' | sort -u
if [ -z "$found" ]; then
    echo "no exemplar with trace id $trace in Prometheus"
    tail -20 "$work/prometheus.log"
    exit 1
fi
# The same trace id is in the access log line of that request: from a latency bucket to the log.
grep '"event":"access"' "$work/fanout.log" | grep -q "\"trace_id\":\"$trace\"" ||
    { echo "no access log line with trace id $trace"; exit 1; }
# Prometheus asks for OpenMetrics first: the exemplar proves that page was parsed.
echo "$targets" | grep -q '"health":"up"'
echo "prometheus: OpenMetrics scraped, exemplar trace_id=$trace found, and in the access log"
