#!/usr/bin/env bash
# The README's "quality loop" walkthrough, end to end, on the simulated models; every figure in
# that section is this script's output. Run from the repository root:
#   bash examples/quality_walkthrough.sh [scratch-dir]      (needs: pip install -e ".[dev]")
set -euo pipefail
export MODELMIX_HOME="${1:-$(mktemp -d)}"
export COLUMNS="${COLUMNS:-150}"
CONFIG=examples/quality.yaml
PORT="${PORT:-4000}"
URL="http://127.0.0.1:$PORT"
step() { printf '\n$ %s\n' "$*"; "$@"; }

# 1. evals: the model x task matrix, a heatmap, profiles for the learned router
step modelmix eval run examples/evals/demo.jsonl --config $CONFIG \
  --models sim-small,sim-medium,sim-large --judge sim-large --run demo --no-progress
step modelmix eval heatmap demo --config $CONFIG --out docs/eval-heatmap.png
step modelmix eval profiles demo --config $CONFIG

# 2. serve with the quality loop on; users ask and rate the answers
modelmix serve --config $CONFIG --port "$PORT" --log-level warning 2>"$MODELMIX_HOME/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "$URL/ready" >/dev/null && break; sleep 0.1; done
step python3 examples/quality_traffic.py --url "$URL" --route smart -n 80 --feedback
RID=$(curl -s -D - -o /dev/null "$URL/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model": "cheap", "messages": [{"role": "user", "content": "What is 12 * 7 + 5 - 3?"}]}' \
  | tr -d '\r' | awk -F': ' 'tolower($1) == "x-modelmix-request-id" {print $2}')
step curl -s "$URL/v1/feedback" -H 'content-type: application/json' \
  -d "{\"request_id\": \"$RID\", \"label\": \"thumbs_down\", \"comment\": \"off by one\"}"
echo
sleep 1
step modelmix eval matrix shadow:smart --config $CONFIG

# 3. retrain the learned router from the ledger (evals + labelled traffic), replayed offline
step modelmix eval run examples/evals/arith.jsonl --config $CONFIG \
  --models sim-small,sim-medium,sim-large --run arith --no-progress
step modelmix router train --from-ledger --config $CONFIG --out "$MODELMIX_HOME/smart-router.npz"

# 4. replay a hand-written candidate
step modelmix replay --policy examples/policies/smart-rules.yaml --config $CONFIG

# 5. versions and canaries: the gateway promotes or rolls back on its own
step modelmix policy list --config $CONFIG
step modelmix policy canary examples/policies/smart-rules.yaml --share 0.5 --sticky user \
  -m "short sums to sim-medium" --config $CONFIG
sleep 1.5  # the gateway checks for policy changes every second (quality.policy.poll_seconds)
python3 examples/quality_traffic.py --url "$URL" --route smart -n 60 --seed 1 >/dev/null
sleep 2.5
step modelmix policy status --config $CONFIG      # the canary as the gateway sees it
for batch in 2 3 4 5 6; do
  modelmix policy status --config $CONFIG --json | grep -q '"canary": null' && break
  python3 examples/quality_traffic.py --url "$URL" --route smart -n 60 --seed "$batch" >/dev/null
  sleep 2.5
done
step modelmix policy status --config $CONFIG
step modelmix policy canary "$MODELMIX_HOME/smart-router.policy.yaml" --share 0.5 --sticky user \
  -m "retrained router" --config $CONFIG
sleep 1.5
for batch in 11 12 13 14 15 16; do
  python3 examples/quality_traffic.py --url "$URL" --route smart -n 60 --seed "$batch" >/dev/null
  sleep 2.5
  modelmix policy status --config $CONFIG --json | grep -q '"canary": null' && break
done
step modelmix policy log --config $CONFIG
step modelmix policy diff live "$MODELMIX_HOME/smart-router.policy.yaml" --config $CONFIG

# 6. alarms: the golden-set probes have been running every 5 s all along
for _ in $(seq 60); do
  [ "$(modelmix alarms list --config $CONFIG --json | grep -c '"kind"')" -ge 3 ] && break
  sleep 2
done
step modelmix alarms list --config $CONFIG
step sh -c "curl -s $URL/metrics | grep -E '^modelmix_quality_(alarms_total|score)'"
