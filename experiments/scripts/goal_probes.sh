#!/usr/bin/env bash
# The 6-epoch probes of experiments/journal.md ("What was tried for the goal"): the PGD-7 budget of
# scripts/compare.sh with one change each, then PGD-50 and APGD-T (9 targets) at Linf 0.3 on the
# fixed 1,000-image subset. Each probe is ~7 min of training + ~2 min of evaluation on 2 cores;
# every step resumes after a kill.
#   bash experiments/scripts/goal_probes.sh [NAME ...]   (default: all; OUT=runs/probe)
set -euo pipefail
cd "$(dirname "$0")/../.."
ADV=${ADV:-.venv/bin/advmnist}
OUT=${OUT:-runs/probe}
budget=(--recipe pgd --steps 7 --epochs 6 --eps 0.3 --eps-ramp 0.3 --lr 0.05 --lr-schedule one-cycle
        --precision bf16 --val-size 1000 --watchdog --select best --seed 42)
declare -A change=(
    [baseline]=""                        # = runs/compare/pgd of scripts/compare.sh
    [wd5e-4]="--weight-decay 5e-4"
    [ema0.999]="--ema 0.999"
    [eps0.4]="--eps 0.4"                 # train at 0.4, evaluate at 0.3
    [nodrop]="--arch seed-cnn[dropout=0]"
)
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(baseline wd5e-4 ema0.999 eps0.4 nodrop)
for name in "${names[@]}"; do
    [[ -v "change[$name]" ]] || { echo "unknown probe $name; choose from ${!change[*]}" >&2; exit 2; }
    # shellcheck disable=SC2086  # the change is a list of flags
    $ADV train --quiet "${budget[@]}" ${change[$name]} --out "$OUT/$name" --resume
    $ADV eval --quiet --model "$OUT/$name/model.safetensors" --attack "pgd[steps=50],apgd-t" --eps 0.3 \
        --every 10 --bf16 --out "$OUT/$name/eval" --resume
done
