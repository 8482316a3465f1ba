#!/usr/bin/env bash
# Reproduces the shipped world captioner (plugins/curate_captioner/world_model) from scratch:
# stage 1, stage 2, then the web fine-tune (stage 2 continued on web-styled training-partition worlds).
# Usage: plugins/curate_captioner/training/train_world.sh
# THREADS (default 2): torch threads; on a shared machine a second thread can make every step slower.
# The shipped captioner's tower was tuned from the world CLIP curate_clip shipped until 2026-12-03;
# for an exact reproduction restore it first (TRAINING.md: `git show e556720:plugins/curate_clip/...`).
set -euo pipefail
WORK=${WORK:-.curate/captioner-train}
WORLD=${WORLD:-.curate/captioner-world-r2}
ENCODER_WORLD=${ENCODER_WORLD:-.curate/encoder-world}
SELECTION_WORLD=${SELECTION_WORLD:-.curate/captioner-world-select}
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS

# Every row of the world gets an annotator-realigned caption: stage 2 trains on the 19,057 train
# rows' (instead of 3,833 at --realign-fraction 0.2, which stage 2 only memorized).
curate world generate "$WORLD" --n 20000 --seed 0 --realign-fraction 1.0

# The world CLIP's tower, tuned on object labels (shape, colour, size, logo at each grid position)
# so it sees shapes; then frozen, as Altogether freezes its CLIP. Labels are free in the world, so
# the tower gets a world of its own, five times the captioner's (a tower tuned on the captioner's
# 19k rows overfits: held-out shape 0.975 against 0.989); it is measured on the captioner world's
# val scenes, and any of its rows that shows one of them is left out.
curate world generate "$ENCODER_WORLD" --n 100000 --seed 100 --realign-fraction 0.0
curate captioner tune-world-encoder --world "$ENCODER_WORLD" --val-world "$WORLD" --out "$WORK/encoder" \
  --steps 8000 --threads "$THREADS"

curate captioner train --stage 1 --world "$WORLD" --out "$WORK/stage1" --max-rows 6000 \
  --encoder "$WORK/encoder/open_clip_config.json" --encoder-checkpoint "$WORK/encoder/visual.safetensors" --decoder tiny-llama --decoder-hidden 128 --decoder-layers 2 --decoder-heads 4 \
  --vocab-size 768 --features pooled+tokens --max-patch-tokens 64 --mapper-width 128 --mapper-layers 2 \
  --name world-captioner --steps 150 --batch-size 32 --lr 2e-3 --warmup 30 --seed 0 --threads "$THREADS" \
  --log-every 25 --checkpoint-every 50 --feature-cache "$WORK/features"

curate captioner train --stage 2 --world "$WORLD" --out "$WORK/stage2" --init "$WORK/stage1" \
  --steps 6000 --batch-size 32 --lr 1e-3 --warmup 200 --seed 0 --threads "$THREADS" \
  --log-every 100 --checkpoint-every 500 --feature-cache "$WORK/features"

# The copy bias (a decoding default, no retraining) is chosen on a world of its own, so the
# reported split stays out of every choice: the best attribute accuracy that keeps entity
# retention >= 0.90. Written into "$WORK/stage2"/captioner.json.
curate world generate "$SELECTION_WORLD" --n 12000 --seed 5 --realign-fraction 0.0
curate captioner select-copy-bias --world "$SELECTION_WORLD" --model "$WORK/stage2" --values 0,1,2,3 --threads "$THREADS"

# Held-out evaluation of stage 2 on its world's val split (writes EVAL.md / EVAL.json here).
curate captioner eval --world "$WORLD" --model "$WORK/stage2" --threads "$THREADS" --out plugins/curate_captioner/training

# Web fine-tune (issue 17): stage 2 continued on web-styled, drifted worlds that draw only
# training-partition scenes (--scenes train), so no held-out world shares a scene with them.
# Targets: the worlds' realigned captions (the entity spelt as the ground truth spells it);
# prompts: the alt-texts as the pipeline's normalize_text hands them to realign. Seeds 4101-4104
# are used by nothing else; one world keeps the default mix (no styling) against forgetting.
for args in "4101 --n 20000 --web-style-rate 0.7 --noise-rates partial=0.30,wrong_attribute=0.25,unrelated=0.10 --dup-fraction 0.25 --entity-rate 0.5" \
            "4102 --n 20000 --web-style-rate 0.5 --noise-rates partial=0.2,wrong_attribute=0.15,unrelated=0.15,boilerplate=0.08,empty=0.04 --entity-rate 0.4" \
            "4103 --n 15000 --entity-rate 0.3" \
            "4104 --n 10000 --web-style-rate 0.7 --web-style-weights all_caps=3,title_case=1,stock_framing=2,file_name=2,seo_keywords=2,html=1,emoji=1,synonym=1,truncation=0.5,misspelling=0.5,language=0.5,multi_alt=0.5 --noise-rates partial=0.25,wrong_attribute=0.2,unrelated=0.1,boilerplate=0.05,empty=0.03 --entity-rate 0.6"; do
  set -- $args
  seed=$1; shift
  curate world generate "$WORK/web-$seed" --seed "$seed" --scenes train --fault-rate 0 --realign-fraction 1.0 "$@"
done
python plugins/curate_captioner/training/web_table.py "$WORK/web_table.parquet" "$WORK"/web-4101 "$WORK"/web-4102 "$WORK"/web-4103 "$WORK"/web-4104
curate captioner train --stage 2 --table "$WORK/web_table.parquet" --out "$WORK/web" --init "$WORK/stage2" \
  --steps 1200 --batch-size 32 --lr 3e-4 --warmup 50 --seed 0 --threads "$THREADS" \
  --log-every 50 --checkpoint-every 300 --feature-cache "$WORK/web-features"

# Its copy bias, chosen on two selection worlds of held-out scenes whose seeds no report uses
# (6217: the drifted web mix; 6218: the default mix); set "copy_bias" in "$WORK/web"/captioner.json
# to the one chosen (TRAINING.md, "Web fine-tune"); world_model/ shipped it until 2026-12-05.
curate world generate "$WORK/select-6217" --n 4000 --seed 6217 --scenes heldout --fault-rate 0 --realign-fraction 0 \
  --web-style-rate 0.5 --noise-rates partial=0.30,wrong_attribute=0.25,unrelated=0.10 --dup-fraction 0.25 --entity-rate 0.5
curate world generate "$WORK/select-6218" --n 3000 --seed 6218 --scenes heldout --fault-rate 0 --realign-fraction 0
for bias in 0 1 2; do
  python plugins/curate_captioner/training/web_select.py "$WORK/select-6217" "$WORK/web" 2000 "$bias"
  python plugins/curate_captioner/training/web_select.py "$WORK/select-6218" "$WORK/web" 3000 "$bias"
done

# Multi-object fine-tune (issue 17, 2026-12-05; TRAINING.md, "Multi-object fine-tune"): the web
# fine-tune continued on four fresh training-partition worlds (seeds 5541-5544, used by nothing
# else), every two- and three-object row and 30 % of the one-object rows. Copy bias stays 1.
MIX="partial=0.25,wrong_attribute=0.2,unrelated=0.15,boilerplate=0.05,empty=0.05"
for seed in 5541 5543; do
  curate world generate "$WORK/multi-$seed" --n 40000 --seed "$seed" --scenes train --fault-rate 0 --realign-fraction 1.0 \
    --web-style web --noise-rates "$MIX" --entity-rate 0.4
done
for seed in 5542 5544; do
  curate world generate "$WORK/multi-$seed" --n 20000 --seed "$seed" --scenes train --fault-rate 0 --realign-fraction 1.0
done
python plugins/curate_captioner/training/web_table.py --one-object-fraction 0.3 "$WORK/multi_table.parquet" \
  "$WORK"/multi-5541 "$WORK"/multi-5542 "$WORK"/multi-5543 "$WORK"/multi-5544
curate captioner train --stage 2 --table "$WORK/multi_table.parquet" --out "$WORK/multi" --init "$WORK/web" \
  --steps 6000 --batch-size 32 --lr 3e-4 --warmup 50 --seed 0 --threads "$THREADS" \
  --log-every 50 --checkpoint-every 1000 --feature-cache "$WORK/multi-features"
# Chosen on a selection world of held-out scenes (seed 5532) against its step-3000 checkpoint and
# a two-world run; then copy "$WORK/multi" to world_model/ (merge the stage record by hand).
curate world generate "$WORK/select-5532" --n 3000 --seed 5532 --scenes heldout --realign-fraction 1.0 \
  --web-style web --noise-rates "$MIX" --fault-rate 0
curate captioner compare --world "$WORK/select-5532" --rows 1500 --threads "$THREADS" \
  --exclude-world "$WORK"/multi-5541 --exclude-world "$WORK"/multi-5542 --exclude-world "$WORK"/multi-5543 \
  --exclude-world "$WORK"/multi-5544 --model before="$WORK/web" --model multi="$WORK/multi"
