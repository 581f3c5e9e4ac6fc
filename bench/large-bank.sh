#!/bin/bash
# A bank of 2,070 entries (the 414 Super-NI tasks five times under new names, tiny synthetic
# adapters: a Mistral-shaped bank that size needs ~55 GB): time and peak memory of each step.
# Usage: bench/large-bank.sh [WORK_DIR]  (after `npm run build`; WORK_DIR is emptied first).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
sni="$repo/../shared/data/sni"
mkdir -p "$work" && cd "$work" && rm -rf tasks synth bank out-*
mkdir tasks
n=0
for k in 0 1 2 3 4; do
  for f in $(ls "$sni"/*.json | sort); do
    ln -s "$f" "tasks/$(basename "$f" .json)_c$k.json"
    n=$((n + 1))
    [ $n -ge 2070 ] && break 2
  done
done
L="node $repo/dist/cli/main.js"
step() { /usr/bin/time -f "$1: %e s, peak %M KB" "${@:2}" 2>&1 >/dev/null | tail -1; }
target="$sni/task1146_country_capital.json"
step synth-bank $L synth-bank synth --entries 2070 --data tasks --layout tiny
step "bank init" $L bank init bank --tokenizer mistral
step "bank import-sni" $L bank import-sni bank --tasks tasks --adapters synth/adapters
step "bank index" $L bank index bank --threads 2
step "distances js" $L distances bank --metric js --out out-d.json
step "generate (paper's method)" $L generate bank --data "$target" --select method --metric js --method normalized --out out-gen
step "bank verify" $L bank verify bank
