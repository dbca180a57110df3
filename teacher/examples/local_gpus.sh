#!/bin/bash
# Data parallel on one machine: one shard per GPU group (here 8 GPUs, 4 replicas of TP=2),
# all in the background, then one merge. Re-running the same script resumes every shard.
#
#   bash teacher/examples/local_gpus.sh prompts.jsonl out/ deepseek-ai/DeepSeek-R1-Distill-Qwen-32B
set -euo pipefail

PROMPTS=${1:?prompts file}
OUT_DIR=${2:?output folder}
TEACHER=${3:-deepseek-ai/DeepSeek-R1-Distill-Qwen-32B}
TP=2
REPLICAS=4

mkdir -p "$OUT_DIR"
for i in $(seq 0 $((REPLICAS - 1))); do
  GPUS=$(seq -s, $((i * TP)) $((i * TP + TP - 1)))
  CUDA_VISIBLE_DEVICES=$GPUS distill generate "$PROMPTS" -o "$OUT_DIR/shard-$i.jsonl" \
    --teacher "$TEACHER" --tensor-parallel-size $TP --shard "$i/$REPLICAS" > "$OUT_DIR/shard-$i.log" 2>&1 &
done
wait
distill merge "$OUT_DIR"/shard-*.jsonl -o "$OUT_DIR/traces.jsonl"
