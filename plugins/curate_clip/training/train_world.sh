#!/usr/bin/env bash
# Reproduces the shipped world CLIP (plugins/curate_clip/weights/world-clip-tiny.safetensors) from
# scratch, with open_clip_train alone: four runs of `curate clip train-world`, each one
# open_clip_train.main on WebDataset shards the run writes, each starting from the one before.
# Usage: plugins/curate_clip/training/train_world.sh   (about 2 h 45 min on 2 CPU cores, + ~40 min for step 5)
# THREADS (default 2): torch threads of open_clip_train.
set -euo pipefail
WORK=${WORK:-.curate/world-clip-train}
THREADS=${THREADS:-2}
EXPORT=${EXPORT:-plugins/curate_clip/weights/world-clip-tiny.safetensors}
ckpt() { echo "$WORK/$1/logs/world-clip/checkpoints/epoch_$2.pt"; }

# 1. Minimal-pair families from scratch (a scene and up to 47 one-change variants, a random walk;
#    texts name every object; unrelated scenes between families; 30 % of variants a text naming
#    only what they changed), a family per batch (open_clip_train's sample shuffle at 512).
#    Configured for 4 epochs, as the run that made the shipped weights was; its epoch 1 is used
#    (the cosine schedule up to it does not depend on what follows, so the rest can be stopped).
curate clip train-world --out "$WORK/g1" --families 1800 --family-size 48 --family-walk --family-full-texts \
  --singles 0.67 --family-focused 0.3 --sample-shuffle 512 --seed 1001 --epochs 4 --batch-size 512 \
  --warmup 200 --lr 2e-3 --threads "$THREADS"
# 2. Three more epochs of the same kind of data, reseeded (held-out AUC 0.906 after them).
curate clip train-world --out "$WORK/g2" --init "$(ckpt g1 1)" --families 1800 --family-size 48 --family-walk \
  --family-full-texts --singles 0.67 --family-focused 0.3 --sample-shuffle 512 --seed 1002 --epochs 3 \
  --batch-size 512 --warmup 100 --lr 1e-3 --threads "$THREADS"
# 3. Minimal pairs (training/pairs.py): a scene with any of its true texts, next to the scene its
#    wrong-attribute alt-text is true of; every pair in one batch (sample shuffle off) — the
#    hard-negative loop's batches, as plain samples (AUC 0.957 after two epochs).
curate clip train-world --out "$WORK/p1" --init "$(ckpt g2 3)" --pairs 150000 --sample-shuffle 1 --seed 1003 \
  --epochs 2 --batch-size 256 --warmup 50 --lr 5e-4 --threads "$THREADS"
# 4. Fresh pairs at a lower learning rate; its last epoch is the shipped model.
curate clip train-world --out "$WORK/p2" --init "$(ckpt p1 2)" --pairs 150000 --sample-shuffle 1 --seed 1004 \
  --epochs 2 --batch-size 256 --warmup 50 --lr 3e-4 --threads "$THREADS" --export "$WORK/p2.safetensors"
# 5. Web-styled minimal pairs on train-partition scenes only (2026-12-04, issue 17): both scenes of
#    every pair are `scenes: train`, 40 % of the true texts are the world's partial alt-texts, each
#    text is web-styled with probability 0.6; the web's one-token synonyms (violet, grey, disc…)
#    start from their canonical word's token embedding (training/synonyms.py). ~40 min on 2 shared
#    cores. Then the shipped weights: halfway between its start and its epoch 2 (training/average.py,
#    WiSE-FT), which keeps the web-mix gain and the default mix (training/EVAL.md, first section).
curate clip train-world --out "$WORK/w1" --init "$WORK/p2.safetensors" --synonym-init --pairs 14000 \
  --pair-scenes train --pair-partial 0.4 --pair-web-style 0.6 --sample-shuffle 1 --seed 1005 --epochs 2 \
  --batch-size 256 --warmup 20 --lr 3e-4 --threads "$THREADS"
python -m curate_clip.training.average "$WORK/w1/init-synonyms.pt" "$(ckpt w1 2)" --alpha 0.5 --export "$EXPORT"
curate clip eval-world --n 2000 --seed 2000 --checkpoint "$EXPORT"
