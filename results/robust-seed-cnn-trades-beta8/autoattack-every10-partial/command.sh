#!/usr/bin/env bash
# Unfinished (256 of 1,000 points): copy this folder to the --out folder, then the same command finishes it.
# The weights are not committed (model sha256 in config.json): a model retrained elsewhere that differs is refused.
# mkdir -p runs/robust-trades-beta8 && cp -r results/robust-seed-cnn-trades-beta8/autoattack-every10-partial runs/robust-trades-beta8/autoattack-every10
advmnist eval --quiet --model runs/robust-trades-beta8/model.safetensors --attack autoattack --eps 0.3 --every 10 \
  --out runs/robust-trades-beta8/autoattack-every10 --resume
