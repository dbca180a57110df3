#!/bin/bash
# The example of logit distillation in docs/kd.md: quickstart teacher -> generate --logprobs 20 -> filter -> train --objective kd
set -e
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
D=${1:-runs/kd-demo}; mkdir -p $D
export OMP_NUM_THREADS=2
[ -d $D/qs/teacher/model ] || $PY -m cli run recipes/quickstart.yaml -o $D/qs --until teacher 2>&1 | tail -3
head -200 $D/qs/teacher/prompts.jsonl > $D/prompts.jsonl
for f in traces.jsonl kept.jsonl run-kd run-sft; do [ ! -e $D/$f ] || { echo "$D/$f exists: give another folder"; exit 2; }; done
echo '$ distill generate prompts.jsonl -m teacher/model -o traces.jsonl -n 2 --logprobs 20 ...'
$PY -m cli generate $D/prompts.jsonl -m $D/qs/teacher/model -o $D/traces.jsonl -n 2 --logprobs 20 --field-id problem_id \
  --temperature 1.0 --top-p 1.0 --max-tokens 96 --math-instruction '' --max-model-len 256 --kv-cache-memory-bytes 268435456 \
  --enforce-eager --reproducible 2>&1 | grep -v "^INFO\|^WARNING\|^\[" | tail -25
ls -l $D/traces.jsonl $D/traces.logprobs
echo '$ distill filter traces.jsonl -o kept.jsonl --rules format,length,repetition,language,correctness'
$PY -m cli filter $D/traces.jsonl -o $D/kept.jsonl --rules format,length,repetition,language,correctness --workers 1 2>&1 | tail -22
ls -l $D/kept.jsonl $D/kept.logprobs
for obj in kd sft; do
  echo "\$ distill train -s qwen-1.5b --base-model teacher/student-base -d kept.jsonl -o run-$obj --objective $obj ..."
  $PY -m cli train -s qwen-1.5b --base-model $D/qs/teacher/student-base -d $D/kept.jsonl -o $D/run-$obj --objective $obj \
    --max-length 256 --lr 0.003 --epochs 2 --batch-size 16 --grad-accum 1 --no-packing --no-gradient-checkpointing \
    --eval-fraction 0.1 --logging-steps 5 --save-steps 100000 2>&1 | tail -20
done
$PY bench/bench_logprobs.py $D/traces.jsonl
