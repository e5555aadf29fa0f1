#!/usr/bin/env bash
# The recipe comparison and the architecture analysis of docs/results.md (issue 5). Every recipe
# trains the seed CNN under one budget (6 epochs, Linf eps 0.3 ramped over the first 30%, one-cycle
# lr 0.05, bf16 + channels_last, 1,000 held-out validation images, watchdog, best epoch kept); PGD-AT
# then trains three architecture sizes under that same budget. `advmnist compare` evaluates each
# group alike: FGSM and PGD-50 on every 10th test image, AutoAttack on every 50th, eps 0.1/0.2/0.3.
# `final` compares the defenses at their full budget the same way: the two PGD checkpoints shipped before
# the TRADES one (taken from git history), the shipped TRADES checkpoint, MART (45 min to train) and TRADES
# for 90 epochs (100 min), the last two trained unless already there: each is the shipped preset
# (configs/robust-seed-cnn.toml) with one change, written below as a two-line preset in $OUT/final-models
# (the same settings as experiments/configs/robust-seed-cnn-mart.toml and -trades-2h.toml, whose runs these are).
# Every step resumes after a kill.
#   bash scripts/compare.sh [train|eval|all|final]   (default all; OUT=runs/compare)
set -euo pipefail
cd "$(dirname "$0")/.."
ADV=${ADV:-.venv/bin/advmnist}
OUT=${OUT:-runs/compare}
what=${1:-all}
case $what in
    train | eval | all | final) ;;
    *) echo "usage: bash scripts/compare.sh [train|eval|all|final], not '$what'" >&2; exit 2 ;;
esac
budget=(--epochs 6 --eps 0.3 --eps-ramp 0.3 --lr 0.05 --lr-schedule one-cycle --precision bf16
        --val-size 1000 --watchdog --select best --seed 42)

train() {  # name, then the flags that differ
    local name=$1; shift
    $ADV train "${budget[@]}" "$@" --out "$OUT/$name" --resume
}

if [[ $what == train || $what == all ]]; then
    train standard --recipe standard
    train fgsm-mix --recipe fgsm-mix
    train fgsm-rs --recipe fgsm-rs
    train ensemble --recipe ensemble --ensemble "$OUT/standard/model.safetensors" \
        --ensemble "$OUT/fgsm-mix/model.safetensors"
    train pgd --recipe pgd --steps 7
    train trades --recipe trades --steps 7 --beta 6
    train mart --recipe mart --steps 7 --beta 6
    train small-cnn --recipe pgd --steps 7 --arch small-cnn
    train seed-cnn-wide --recipe pgd --steps 7 --arch seed-cnn-wide
fi

if [[ $what == eval || $what == all ]]; then
    m() { echo "--model $1=$OUT/$1/model.safetensors"; }
    # shellcheck disable=SC2046
    $ADV compare $(m standard) $(m fgsm-mix) $(m fgsm-rs) $(m ensemble) $(m pgd) $(m trades) $(m mart) \
        --model robust-checkpoint=src/advmnist/pretrained/robust-seed-cnn.safetensors \
        --title "Training recipes, seed CNN, 6 epochs each (and the shipped checkpoint)" \
        --out "$OUT/recipes" --resume
    # shellcheck disable=SC2046
    $ADV compare $(m small-cnn) --model seed-cnn="$OUT/pgd/model.safetensors" $(m seed-cnn-wide) \
        --title "Robustness vs capacity: PGD-7 AT, 6 epochs each" --out "$OUT/architectures" --resume
fi

if [[ $what == final ]]; then
    for shipped in 3d3791a:pgd f7f5fb8:pgd-aug; do  # commit:name of the checkpoints shipped before
        rev=${shipped%%:*} name=${shipped##*:}
        if [[ ! -f $OUT/final-models/$name/model.json ]]; then
            mkdir -p "$OUT/final-models/$name"
            git show "$rev:checkpoints/robust-seed-cnn.safetensors" > "$OUT/final-models/$name/model.safetensors"
            git show "$rev:checkpoints/robust-seed-cnn.json" > "$OUT/final-models/$name/model.json.tmp"
            mv "$OUT/final-models/$name/model.json.tmp" "$OUT/final-models/$name/model.json"
        fi
    done
    preset() {  # name, then the TOML lines that change the shipped preset
        local name=$1; shift
        printf '%s\n' "base = \"$PWD/configs/robust-seed-cnn.toml\"" "$@" > "$OUT/final-models/$name.toml"
        $ADV train --config "$OUT/final-models/$name.toml" --out "$OUT/final-models/$name" --resume
    }
    # MART's objective in place of TRADES' (its PGD walk starts uniform; TRADES' trades_start is left out)
    preset mart 'recipe = "mart"'
    # 90 epochs, and the per-epoch validation PGD-10 on all 1,000 validation images
    preset trades-90ep 'epochs = 90' 'watchdog_size = 1000'
    f() { echo "--model $1=$OUT/final-models/$1/model.safetensors"; }
    # shellcheck disable=SC2046
    $ADV compare $(f pgd) $(f pgd-aug) --model trades=src/advmnist/pretrained/robust-seed-cnn.safetensors $(f mart) \
        $(f trades-90ep) --title "Defenses at their full budget, seed CNN, Linf: the final comparison" \
        --out "$OUT/final" --resume
fi
