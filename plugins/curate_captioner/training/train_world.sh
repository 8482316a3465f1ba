#!/usr/bin/env bash
# Reproduces the shipped world captioner (plugins/curate_captioner/world_model) from scratch.
# Usage: plugins/curate_captioner/training/train_world.sh [ENCODER]   (ENCODER: world-clip or an open_clip JSON)
# THREADS (default 1): torch threads; on a shared machine a second thread can make every step slower.
set -euo pipefail
ENCODER=${1:-world-clip}
WORK=${WORK:-.curate/captioner-train}
WORLD=${WORLD:-.curate/captioner-world-r1}
THREADS=${THREADS:-1}
export OMP_NUM_THREADS=$THREADS

# Every row of the world gets an annotator-realigned caption: stage 2 trains on the 19,057 train
# rows' (instead of 3,833 at --realign-fraction 0.2, which stage 2 only memorized).
curate world generate "$WORLD" --n 20000 --seed 0 --realign-fraction 1.0

curate captioner train --stage 1 --world "$WORLD" --out "$WORK/stage1" --max-rows 6000 \
  --encoder "$ENCODER" --decoder tiny-llama --decoder-hidden 128 --decoder-layers 2 --decoder-heads 4 \
  --vocab-size 768 --features pooled+tokens --max-patch-tokens 64 --mapper-width 128 --mapper-layers 2 \
  --name world-captioner --steps 150 --batch-size 32 --lr 2e-3 --warmup 30 --seed 0 --threads "$THREADS" \
  --log-every 25 --checkpoint-every 50 --feature-cache "$WORK/features"

curate captioner train --stage 2 --world "$WORLD" --out "$WORK/stage2" --init "$WORK/stage1" \
  --steps 3000 --batch-size 32 --lr 2e-3 --warmup 50 --seed 0 --threads "$THREADS" \
  --log-every 50 --checkpoint-every 250 --feature-cache "$WORK/features"

curate captioner eval --world "$WORLD" --model "$WORK/stage2" --threads "$THREADS" --out plugins/curate_captioner/training
