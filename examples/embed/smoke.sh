#!/bin/sh
# Runs the embedding example: its own route answers without the late warehouse, fanout's server
# and fanout's endpoints mounted in the application's server aggregate that route, and SIGINT stops the whole application with exit code 0.
set -eu
app="$1"
log=$(mktemp)
"$app" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 50); do grep -q '^fanout on ' "$log" && break; sleep 0.1; done
cat "$log"
stock=$(sed -n 's/^stock on //p' "$log")
fanout=$(sed -n 's/^fanout on //p' "$log")
own=$(curl -sf --max-time 5 "$stock")
echo "own route: $own"
[ "$own" = '{"north":12,"south":7,"late":["far-east"]}' ]
merged=$(curl -sf --max-time 5 "$fanout/api/aggregate/wg")
echo "fanout: $merged" | cut -c1-160
echo "$merged" | grep -q '"results":{"stock":{"north":12,"south":7,"late":\["far-east"\]}}'
mounted=$(curl -sf --max-time 5 "${stock%/stock}/api/aggregate/errgroup")
echo "mounted: $mounted" | cut -c1-160
echo "$mounted" | grep -q '"pattern":"errgroup","results":{"stock":{"north":12'
kill -INT $pid
wait $pid || { echo "the application exited with $? on SIGINT"; exit 1; }
grep -q '^stopped after [0-9]* heartbeats' "$log" || { cat "$log"; exit 1; }
