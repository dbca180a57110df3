#!/bin/bash
# Multi-node `distill train` under SLURM: one `accelerate launch` per node, 8 GPUs each.
#   mkdir -p logs && sbatch --nodes=2 slurm_train.sh qwen-32b kept.jsonl runs/qwen-32b zero3 [extra distill train flags]
# Print this file's installed path with:
#   python -c "import students, pathlib; print(pathlib.Path(students.__file__).parent / 'accelerate')"
# CONFIG is one of the accelerate configs next to this script: ddp, zero2, zero3, zero3-offload, zero3-sp, fsdp2.
#SBATCH --job-name=distill-train
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:8
#SBATCH --cpus-per-task=64
#SBATCH --exclusive
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
STUDENT=${1:?usage: slurm_train.sh STUDENT DATA RUN_DIR [CONFIG] [flags...]}
DATA=${2:?data}
OUT=${3:?run dir}
CONFIG=${4:-zero3}
shift $(( $# < 4 ? $# : 4 ))  # what is left are extra `distill train` flags
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
# sed reads the whole list: `head -n 1` can close the pipe early, and with pipefail the SIGPIPE aborts the job
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)
MASTER_PORT=${MASTER_PORT:-29500}
CONFIG_FILE=$(python -c "import students, pathlib; print(pathlib.Path(students.__file__).parent / 'accelerate' / '$CONFIG.yaml')")
[ -f "$CONFIG_FILE" ] || { echo "no accelerate config $CONFIG_FILE" >&2; exit 2; }
EXTRA=$(printf ' %q' "$@")  # keeps flags with spaces intact through `bash -c`
# \$SLURM_NODEID is expanded on each node by srun's shell, the rest here.
srun --kill-on-bad-exit=1 bash -c "accelerate launch \
  --config_file $CONFIG_FILE \
  --num_machines $SLURM_NNODES --num_processes $((SLURM_NNODES * GPUS_PER_NODE)) \
  --machine_rank \$SLURM_NODEID --main_process_ip $MASTER_ADDR --main_process_port $MASTER_PORT \
  --rdzv_backend c10d \
  -m cli train --student $STUDENT --data $DATA -o $OUT $EXTRA"
