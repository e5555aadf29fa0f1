#!/usr/bin/env bash
cd /work/main
M=runs/robust-trades-ramp15/model.safetensors
export OMP_NUM_THREADS=2
/usr/bin/time -v nice -n 19 .venv/bin/advmnist eval --quiet --model $M --attack autoattack --eps 0.3 --every 10 --out runs/robust-trades-ramp15/autoattack-every10 --resume
