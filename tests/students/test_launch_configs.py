"""Dry runs of the multi-GPU launches (no GPU here): every shipped accelerate config and the SLURM
script are rendered into the command and environment `accelerate launch` would start, and those
are read back by the libraries that read them in a real run: torch.distributed.run's launcher
config, accelerate's DeepSpeed/FSDP plugins and ParallelismConfig, transformers' DeepSpeed
config filling, and DeepSpeed's own config validation (where deepspeed is installed)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "students" / "accelerate"
SHIPPED = ("ddp", "zero2", "zero3", "zero3-offload", "zero3-sp", "fsdp2")


def render(argv: list[str]) -> tuple[object, list[str], dict[str, str]]:
    """What `accelerate launch ARGV` would start: torchrun's LaunchConfig, the per-process command,
    and the environment accelerate adds (its own launch code, stopped before anything runs)."""
    import torch.distributed.run as distrib_run
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import _filter_args, prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args, defaults, mixed_from_config = _validate_launch_command(launch_command_parser().parse_args(argv))
    if args.use_deepspeed:  # as launch_command does before deepspeed_launcher
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mixed_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        _, env = prepare_deepspeed_cmd_env(args)
    else:
        env = prepare_multi_gpu_env(args)
    torchrun = _filter_args(args, distrib_run.get_args_parser(),
                            ["--training_script", args.training_script, "--training_script_args", args.training_script_args])
    launch_config, entrypoint, command = distrib_run.config_from_args(torchrun)
    added = {k: v for k, v in env.items() if k.startswith(("ACCELERATE_", "FSDP_", "PARALLELISM_CONFIG_"))}
    return launch_config, [entrypoint, *command], added


def two_nodes(config: str, *train_args: str) -> list[str]:
    return ["--config_file", str(CONFIGS / f"{config}.yaml"), "--num_machines", "2", "--num_processes", "16",
            "--machine_rank", "1", "--main_process_ip", "10.0.0.1", "--main_process_port", "29500",
            "--rdzv_backend", "c10d", "-m", "cli", "train", *train_args]


def deepspeed_plugin(env: dict[str, str], monkeypatch):
    """accelerate's DeepSpeed plugin as a process of this launch builds it (from its environment)."""
    from accelerate.utils import DeepSpeedPlugin

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return DeepSpeedPlugin()


def deepspeed_config(env: dict[str, str], monkeypatch, hidden_size: int = 5120) -> dict:
    """The DeepSpeed config a run would hand DeepSpeed: the plugin's, its "auto" values filled by
    transformers from the training arguments (transformers needs deepspeed installed for this)."""
    from transformers import TrainingArguments
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    arguments = TrainingArguments(output_dir="unused", per_device_train_batch_size=1, gradient_accumulation_steps=6,
                                  learning_rate=1e-5, max_grad_norm=1.0, use_cpu=True, report_to=[])
    filled = HfTrainerDeepSpeedConfig(deepspeed_plugin(env, monkeypatch).deepspeed_config)
    filled.trainer_config_process(arguments)

    class Model:  # finalize reads the hidden size for ZeRO-3's bucket sizes
        config = type("Config", (), {"hidden_size": hidden_size, "hidden_sizes": None})()

    filled.trainer_config_finalize(arguments, Model, 1000)
    return filled.config


@pytest.mark.parametrize("name", SHIPPED)
def test_every_config_renders_a_two_node_launch(name, monkeypatch):
    launch_config, command, env = render(two_nodes(name, "--student", "qwen-7b", "--data", "kept.jsonl", "-o", "run"))
    assert (launch_config.min_nodes, launch_config.max_nodes, launch_config.nproc_per_node) == (2, 2, 8)
    assert launch_config.rdzv_backend == "c10d" and launch_config.rdzv_endpoint == "10.0.0.1:29500"
    assert command[:4] == [sys.executable, "-u", "-m", "cli"] and command[4:6] == ["train", "--student"]
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    if name.startswith("zero"):
        zero = deepspeed_plugin(env, monkeypatch).deepspeed_config["zero_optimization"]
        assert zero["stage"] == int(name[4])
        assert zero["offload_optimizer"]["device"] == ("cpu" if name == "zero3-offload" else "none")
        assert zero["stage3_gather_16bit_weights_on_model_save"] == (name != "zero2")  # ZeRO-3: final/ is whole weights
    if name == "fsdp2":
        from accelerate.utils import FullyShardedDataParallelPlugin

        for key, value in env.items():
            monkeypatch.setenv(key, value)
        plugin = FullyShardedDataParallelPlugin()
        assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
        assert str(plugin.state_dict_type).endswith("FULL_STATE_DICT")


@pytest.mark.parametrize("name", [name for name in SHIPPED if name.startswith("zero")])
def test_deepspeed_accepts_the_zero_configs(name, monkeypatch):
    """transformers fills the dict a run hands DeepSpeed, and DeepSpeed validates it (both need
    deepspeed, which is in the gpu extra: skipped where it is not installed)."""
    config = pytest.importorskip("deepspeed.runtime.config")
    _, _, env = render(two_nodes(name, "--student", "qwen-7b"))
    ds = deepspeed_config(env, monkeypatch)
    assert ds["train_micro_batch_size_per_gpu"] == 1 and ds["gradient_accumulation_steps"] == 6
    assert "auto" not in json.dumps(ds)  # everything a run needs is filled
    parsed = config.DeepSpeedConfig(ds)
    assert parsed.zero_optimization_stage == int(name[4])
    assert parsed.zero_config.offload_optimizer is None or parsed.zero_config.offload_optimizer.device == (
        "cpu" if name == "zero3-offload" else "none")


def test_sequence_parallel_config_agrees_with_distill(monkeypatch):
    """zero3-sp.yaml exports a ParallelismConfig that accelerate accepts, equal to the one
    `distill train` builds for the preset (qwen-32b: SP 2), and distill adopts its degree."""
    from accelerate.parallelism_config import ParallelismConfig

    from students.config import TrainConfig
    from students.device_layout import sequence_parallel_from_launcher
    from students.trainer import parallelism_config

    _, _, env = render(two_nodes("zero3-sp", "--student", "qwen-32b", "--data", "kept.jsonl", "-o", "run"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    launched = ParallelismConfig()  # what Accelerator builds from the launch environment
    ours = parallelism_config(TrainConfig(student="qwen-32b"), "flash_attention_2")
    assert launched.sp_enabled and launched.sp_backend == "deepspeed" and launched.sp_size == ours.sp_size == 2
    assert launched.sp_handler.sp_attn_implementation == ours.sp_handler.sp_attn_implementation == "flash_attention_2"
    assert launched.sp_handler.sp_seq_length_is_variable and ours.sp_handler.sp_seq_length_is_variable
    assert sequence_parallel_from_launcher(TrainConfig(student="qwen-7b")).sequence_parallel == 2
    from distill.core.errors import InputError

    with pytest.raises(InputError, match="--sp 4 disagrees with the accelerate config's sp_size 2"):
        sequence_parallel_from_launcher(TrainConfig(student="qwen-32b", sequence_parallel=4))
    assert deepspeed_plugin(env, monkeypatch).deepspeed_config["zero_optimization"]["stage"] == 3


FAKES = {
    # the first node name becomes MASTER_ADDR
    "scontrol": '#!/bin/bash\n[ "$1 $2" = "show hostnames" ] && printf "gpu-a\\ngpu-b\\n"\n',
    # srun runs the command once, as node 1 would
    "srun": '#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\nSLURM_NODEID=1 exec "$@"\n',
    # accelerate records what it was asked to launch
    "accelerate": '#!/bin/bash\n"$PYTHON" -c \'import json, sys; json.dump(sys.argv[2:], open(sys.argv[1], "w"))\' "$RECORD" "$@"\n',
}


def test_slurm_script_renders_a_valid_two_node_launch(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in FAKES.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(stat.S_IRWXU)
    (bin_dir / "python").symlink_to(sys.executable)
    record = tmp_path / "argv.json"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT), "PYTHON": sys.executable,
           "RECORD": str(record), "SLURM_JOB_NODELIST": "gpu-[a-b]", "SLURM_NNODES": "2"}
    script = CONFIGS / "slurm_train.sh"
    result = subprocess.run(["bash", str(script), "qwen-32b", "kept.jsonl", "runs/qwen-32b", "zero3-sp", "--report-to",
                             "tensorboard", "--data", "my kept.jsonl"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    argv = json.loads(record.read_text())
    assert argv[0] == "launch"
    launch_config, command, launched = render(argv[1:])
    assert (launch_config.min_nodes, launch_config.nproc_per_node) == (2, 8)
    assert launch_config.rdzv_endpoint == "gpu-a:29500" and launch_config.rdzv_backend == "c10d"
    assert argv[argv.index("--machine_rank") + 1] == "1"  # expanded on the node, not on the submitting host
    assert command[command.index("--student") + 1] == "qwen-32b"
    assert command[-2:] == ["--data", "my kept.jsonl"]  # extra flags survive bash -c intact
    assert launched["PARALLELISM_CONFIG_SP_SIZE"] == "2" and launched["ACCELERATE_USE_DEEPSPEED"] == "true"
    missing = subprocess.run(["bash", str(script), "qwen-32b", "kept.jsonl", "out", "zero9"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no accelerate config" in missing.stderr
