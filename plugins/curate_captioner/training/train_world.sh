#!/usr/bin/env bash
# Reproduces the shipped world captioner (plugins/curate_captioner/world_model) from scratch.
# Usage: plugins/curate_captioner/training/train_world.sh
# THREADS (default 2): torch threads; on a shared machine a second thread can make every step slower.
set -euo pipefail
WORK=${WORK:-.curate/captioner-train}
WORLD=${WORLD:-.curate/captioner-world-r2}
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS

# Every row of the world gets an annotator-realigned caption: stage 2 trains on the 19,057 train
# rows' (instead of 3,833 at --realign-fraction 0.2, which stage 2 only memorized).
curate world generate "$WORLD" --n 20000 --seed 0 --realign-fraction 1.0

# The world CLIP's tower, tuned on the world's object labels (shape, colour, size, logo at each
# grid position) so it sees shapes; then frozen, as Altogether freezes its CLIP.
curate captioner tune-world-encoder --world "$WORLD" --out "$WORK/encoder" --steps 6000 --threads "$THREADS"

curate captioner train --stage 1 --world "$WORLD" --out "$WORK/stage1" --max-rows 6000 \
  --encoder "$WORK/encoder/open_clip_config.json" --encoder-checkpoint "$WORK/encoder/visual.safetensors" --decoder tiny-llama --decoder-hidden 128 --decoder-layers 2 --decoder-heads 4 \
  --vocab-size 768 --features pooled+tokens --max-patch-tokens 64 --mapper-width 128 --mapper-layers 2 \
  --name world-captioner --steps 150 --batch-size 32 --lr 2e-3 --warmup 30 --seed 0 --threads "$THREADS" \
  --log-every 25 --checkpoint-every 50 --feature-cache "$WORK/features"

curate captioner train --stage 2 --world "$WORLD" --out "$WORK/stage2" --init "$WORK/stage1" \
  --steps 6000 --batch-size 32 --lr 1e-3 --warmup 200 --seed 0 --threads "$THREADS" \
  --log-every 100 --checkpoint-every 500 --feature-cache "$WORK/features"

# Held-out evaluation (writes EVAL.md / EVAL.json here); then copy "$WORK/stage2" to world_model/.
curate captioner eval --world "$WORLD" --model "$WORK/stage2" --threads "$THREADS" --out plugins/curate_captioner/training
