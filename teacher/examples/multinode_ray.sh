#!/bin/bash
# One teacher too large for one node (DeepSeek-R1, 671B, FP8): vLLM spans two 8-GPU nodes with
# tensor parallel 8 inside each node and pipeline parallel 2 across them, over a Ray cluster.
#
# On the head node:    ray start --head --port=6379
# On the other node:   ray start --address=HEAD_IP:6379
# Then, on the head node (same Python environment, same model path on both nodes):
#   bash teacher/examples/multinode_ray.sh prompts.jsonl out/r1.jsonl
#
# Several such replicas (one per pair of nodes) run as shards: add --shard I/N to each and
# `distill merge` the outputs, as in slurm_generate.sh.
set -euo pipefail

PROMPTS=${1:?prompts file}
OUT=${2:?output jsonl}
TEACHER=${3:-deepseek-ai/DeepSeek-R1}

distill generate "$PROMPTS" -o "$OUT" --teacher "$TEACHER" --backend vllm \
  --tensor-parallel-size 8 --pipeline-parallel-size 2 --distributed-executor-backend ray \
  --max-model-len 36864 --n 4 --max-tokens 32768 --gpu-memory-utilization 0.92
