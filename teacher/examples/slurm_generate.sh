#!/bin/bash
# Data-parallel teacher sampling on a SLURM cluster: one array task per shard, each task one
# vLLM replica on one node (8 GPUs, tensor parallel 8 for a 70B-class teacher), then one merge.
#
#   sbatch --array=0-7 teacher/examples/slurm_generate.sh prompts.jsonl out/ deepseek-ai/DeepSeek-R1-Distill-Llama-70B
#   # when all tasks are done (or as a dependent job):
#   distill merge out/shard-*.jsonl -o out/traces.jsonl
#
# A task that dies (preemption, node failure) is re-submitted with the same index and resumes:
# samples already in its shard file are skipped, a torn last line is dropped.
#SBATCH --job-name=distill-generate
#SBATCH --nodes=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --output=logs/generate-%A_%a.log
set -euo pipefail

PROMPTS=${1:?prompts file}
OUT_DIR=${2:?output folder}
TEACHER=${3:-deepseek-ai/DeepSeek-R1-Distill-Llama-70B}
SHARDS=${SLURM_ARRAY_TASK_COUNT:?submit with --array=0-N}
SHARD=${SLURM_ARRAY_TASK_ID:?submit with --array=0-N}

mkdir -p "$OUT_DIR"
distill generate "$PROMPTS" -o "$OUT_DIR/shard-$SHARD-of-$SHARDS.jsonl" \
  --teacher "$TEACHER" --backend vllm --tensor-parallel-size 8 \
  --shard "$SHARD/$SHARDS" --n 4 --temperature 0.6 --top-p 0.95 --max-tokens 32768 \
  --max-model-len 34816 --gpu-memory-utilization 0.92 --prefix-caching
