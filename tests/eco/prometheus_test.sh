#!/usr/bin/env bash
# A real Prometheus server scraping tokentap in front of the fake upstream, all on 127.0.0.1:
#   prometheus_test.sh TOKENTAP_BINARY FAKE_UPSTREAM_BINARY
# Sends native, OpenAI and Anthropic requests (streaming and not, one failing), waits for
# scrapes, then asks Prometheus' HTTP API for the token counters (they must equal what the
# fake upstream was told to report), the request count by status, a TTFT histogram_quantile,
# every query of deploy/grafana/tokentap.json (each must evaluate), and the health of the
# shipped alert rules loaded into the server. Exit 77 (ctest: skipped) without prometheus.
set -euo pipefail

tokentap_bin=${1:?usage: prometheus_test.sh TOKENTAP FAKE_UPSTREAM}
fake_bin=${2:?usage: prometheus_test.sh TOKENTAP FAKE_UPSTREAM}
repo=$(cd "$(dirname "$0")/../.." && pwd)

for tool in prometheus curl python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool not installed (Debian package: $tool)"
    exit 77
  fi
done

# shellcheck source=tests/eco/stack.sh
source "$(dirname "$0")/stack.sh"
start_stack prom-test

prom_port=$(free_port)
cp "$repo/deploy/prometheus/tokentap-rules.yml" "$work/"
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - tokentap-rules.yml
scrape_configs:
  - job_name: tokentap
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
EOF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
pids+=($!)
prom="http://127.0.0.1:$prom_port"
wait_for "prometheus to be ready" 60 curl -sf "$prom/-/ready"

# query EXPR: prints the instant vector as lines "label=value,... VALUE", sorted; fails on
# an API error.
query() {
  curl -sf --get "$prom/api/v1/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
r = json.load(sys.stdin)
if r["status"] != "success": sys.exit("query failed: " + json.dumps(r))
out = []
for s in r["data"]["result"]:
    labels = ",".join(k + "=" + v for k, v in sorted(s["metric"].items()) if k != "__name__")
    out.append(labels + " " + s["value"][1])
print("\n".join(sorted(out)))'
}

# Prometheus must have scraped tokentap once before the requests, so rate() sees them.
target_up() {
  [ "$(query 'up{job="tokentap"}')" = "instance=127.0.0.1:$metrics_port,job=tokentap 1" ]
}
if ! (wait_for "a first successful scrape" 30 target_up); then
  curl -s "$prom/api/v1/targets"; echo; fail "tokentap was never scraped"
fi

# --- traffic ---------------------------------------------------------------------------------
declare -A want_completion=() want_prompt=()
sent=0
# send MODEL PATH STREAM PROMPT_TOKENS COMPLETION_TOKENS [extra curl args]: one request whose
# usage the fake reports as given; counts it in the expected totals.
send() {
  local model=$1 path=$2 stream=$3 prompt=$4 completion=$5
  shift 5
  local body='"model":"'$model'","stream":'$stream
  local chat='"messages":[{"role":"user","content":"hi"}]'
  case $path in
    /api/generate | /v1/completions) body="{$body,\"prompt\":\"hi\"}" ;;
    /v1/messages) body="{$body,\"max_tokens\":64,$chat}" ;;
    *) body="{$body,$chat}" ;;
  esac
  curl -s -o "$work/last_body" -w '%{http_code}' "http://127.0.0.1:$proxy_port$path" \
    -H 'Content-Type: application/json' -H "X-Fake-Tokens: $completion" \
    -H "X-Fake-Prompt-Tokens: $prompt" -H 'X-Fake-Delay-Ms: 3' "$@" -d "$body" >"$work/last_code"
  sent=$((sent + 1))
  want_completion[$model]=$((${want_completion[$model]:-0} + completion))
  want_prompt[$model]=$((${want_prompt[$model]:-0} + prompt))
}

# Series appear on their first observation, and rate() cannot see the increase that created
# a series; so one streaming request goes first and is scraped before the rest, and the TTFT
# quantile below then has an increase to work on.
send alpha /api/chat true 3 7
ttft_scraped() { [ "$(query 'sum(tokentap_time_to_first_token_seconds_count)')" = " 1" ]; }
wait_for "the first TTFT observation to be scraped" 30 ttft_scraped
for i in 1 2 3; do send alpha /api/generate false 5 11; done
for i in 1 2 3; do send alpha /api/chat true 3 7; done
for i in 1 2; do send beta /v1/chat/completions true 4 9; done
# tokentap asked the upstream for usage on the client's behalf; the client must not see it.
grep -q '^data: \[DONE\]' "$work/last_body" || fail "OpenAI stream without [DONE]"
! grep -q '"usage"' "$work/last_body" || fail "OpenAI stream without include_usage got usage"
send beta /v1/chat/completions false 6 2
send gamma /v1/messages true 2 6
send gamma /v1/messages false 8 4
grep -q '"usage"' "$work/last_body" || fail "a /v1/messages answer without usage"
# One upstream failure before any token: a 500 with no usage, counted under status 500.
curl -s -o /dev/null "http://127.0.0.1:$proxy_port/api/generate" -H 'X-Fake-Error: before' \
  -d '{"model":"alpha","prompt":"hi","stream":false}'
sent=$((sent + 1))

# --- assertions ------------------------------------------------------------------------------
expect_by_model() {  # FAMILY ASSOC_NAME
  local -n want=$1
  local family=$2 expected="" model
  for model in $(printf '%s\n' "${!want[@]}" | sort); do
    expected+="model=$model ${want[$model]}"$'\n'
  done
  expected=${expected%$'\n'}
  local q="sum by (model) ($family)" got="" deadline=$((SECONDS + 30))
  # Scrapes come every second; poll until the totals arrive or time runs out.
  while got=$(query "$q") && [ "$got" != "$expected" ] && ((SECONDS < deadline)); do
    sleep 0.2
  done
  [ "$got" = "$expected" ] || fail "$q: got [$got] want [$expected]"
  echo "ok: $q = $(echo "$got" | tr '\n' ' ')"
}
expect_by_model want_completion tokentap_completion_tokens_total
expect_by_model want_prompt tokentap_prompt_tokens_total

total=$(query 'sum(tokentap_requests_total)')
[ "${total##* }" = "$sent" ] || fail "sum(tokentap_requests_total) = $total, want $sent"
errors=$(query 'sum by (status) (tokentap_requests_total{status!="200"})')
[ "$errors" = "status=500 1" ] || fail "non-200 requests: got [$errors] want [status=500 1]"
echo "ok: $sent requests, one 500"

# TTFT: streaming requests only (4 /api/chat, 2 OpenAI, 1 Anthropic), over a rate window as
# the dashboard and alerts use it. Each first chunk waited X-Fake-Delay-Ms (3 ms) upstream.
ttft_count=$(query 'sum(tokentap_time_to_first_token_seconds_count)')
[ "${ttft_count##* }" = 7 ] || fail "TTFT observations: got [$ttft_count] want 7"
ttft=$(query 'histogram_quantile(0.95,
  sum by (le) (rate(tokentap_time_to_first_token_seconds_bucket[1m])))')
python3 -c 'import math, sys; v = float(sys.argv[1])
sys.exit(not (math.isfinite(v) and 0.003 <= v <= 80))' \
  "${ttft##* }" || fail "TTFT p95 is not a number of seconds in [0.003, 80]: [$ttft]"
echo "ok: TTFT p95 = ${ttft##* } s"

# Every dashboard query must evaluate in a real Prometheus, with Grafana's variables filled.
python3 - "$repo/deploy/grafana/tokentap.json" >"$work/exprs" <<'EOF'
import json, sys
def walk(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "expr" and isinstance(v, str): print(v.replace("\n", " "))
            else: walk(v)
    elif isinstance(node, list):
        for v in node: walk(v)
walk(json.load(open(sys.argv[1])))
EOF
checked=0
nonempty=0
while IFS= read -r expr; do
  expr=${expr//\$__rate_interval/1m}
  expr=${expr//\$job/.*}
  expr=${expr//\$instance/.*}
  expr=${expr//\$model/.*}
  result=$(query "$expr") || fail "dashboard query does not evaluate: $expr"
  checked=$((checked + 1))
  [ -z "$result" ] || nonempty=$((nonempty + 1))
done <"$work/exprs"
((checked >= 10)) || fail "only $checked dashboard queries found"
# Most panels have data after this traffic (aborts, usage missing, rejections may not).
((nonempty * 2 >= checked)) || fail "only $nonempty of $checked dashboard queries have data"
echo "ok: $checked dashboard queries evaluate, $nonempty with data"

# The shipped alert rules load into a real server and evaluate without errors.
rules_ok() {
  curl -sf "$prom/api/v1/rules" | python3 -c '
import json, sys
rules = [r for g in json.load(sys.stdin)["data"]["groups"] for r in g["rules"]]
bad = [r["name"] + ": " + r.get("lastError", "") for r in rules
       if r["health"] != "ok" or r.get("lastEvaluation", "").startswith("0001")]
if len(rules) < 5 or bad: sys.exit("\n".join(bad) or "too few rules")
print(len(rules))'
}
wait_for "every alert rule to evaluate healthy" 20 rules_ok
echo "ok: $(rules_ok) alert rules healthy"
echo "PASS"
