"""`distill publish`: turn a training run directory into a folder people can load and share.

Reads RUN_DIR/final (full weights or a PEFT adapter) and RUN_DIR/train.json, and writes:
safetensors shards (adapters merged into the base when asked), the tokenizer with an
inference chat template (R1-distill style: the assistant turn opens with "<think>\\n" and
earlier turns' reasoning is dropped), generation_config.json with the recommended sampling,
and a model card; with `gguf`, GGUF files written by llama.cpp's own converter and quantizer
(`students/gguf.py`) and an Ollama Modelfile (`students/modelfile.py`). The folder is built
beside OUTPUT and renamed into place at the end, so a failure never leaves a half-written or
half-replaced output.

QLoRA merge: the adapter was trained against the 4-bit (NF4) weights, not the bf16 originals.
Adding it to the originals gives a model that differs from the one trained (the difference
between the two bases is the whole quantization error, which the adapter partly learned to
compensate). We therefore quantize the base exactly as training did, dequantize it, and merge
into that; `qlora_merge: original` is kept for comparison.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from distill.core.errors import InputError, StageError
from distill.core.jsonl import read_json
from distill.core.models import NF4, load_causal_lm
from distill.core.paths import Out, check_io, inside, named_paths
from distill.core.publishing import MARK, assert_no_secrets, published_by, push, staged
from distill.core.secrets import redact
from distill.core.stage import Command, Stage
from students.gguf import converter, export, file_name
from students.inference import CHAT_FORMATS, INFERENCE_TEMPLATES, generation_config, template_format
from students.manifest import TrainManifest


class PublishConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_dir: Path = Field(description="Training run directory (holds final/ and train.json).")
    output: Path = Field(description="Folder to write the publishable model into.", json_schema_extra={"flags": ["-o"]})
    merge: bool = Field(default=False, description="Merge a LoRA/QLoRA adapter into the base weights (full-weight runs ignore it).")
    qlora_merge: Literal["dequantized", "original"] = Field(
        default="dequantized",
        description="QLoRA only: merge into the dequantized 4-bit base the adapter was trained with, or the original weights.",
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(default="auto", description="Saved weight dtype (auto: the base's).")
    max_shard_size: str = Field(default="5GB", description="Largest safetensors shard.")
    push: str | None = Field(default=None, description="Upload to this Hugging Face repo id (token from HF_TOKEN or `hf auth login`).")
    private: bool = Field(default=False, description="Create the pushed repo as private.")
    overwrite: bool = Field(default=False, description="Replace an existing non-empty output folder.")
    card_only: bool = Field(
        default=False, description="Only rewrite README.md (and the loss plot) of an existing output, e.g. to add an eval table."
    )
    model_name: str | None = Field(default=None, description="Title of the model card (default: repo id or folder name).", json_schema_extra={"flags": ["--name"]})
    license: str | None = Field(default=None, description="License id for the card (default: the student preset's, else 'other').")
    datasets: list[str] = Field(default_factory=list, description="Hub ids of the training data, for the card's metadata.", json_schema_extra={"flags": ["--dataset"]})
    recipe_file: Path | None = Field(default=None, description="Recipe YAML to show in the card (default: RUN_DIR/recipe.yaml if present).")
    filter_report: Path | None = Field(default=None, description="Filter report JSON whose figures go into the card.")
    eval: list[Path] = Field(default_factory=list, description="`distill eval` summary.json files whose table goes into the card.")
    gguf: list[str] = Field(
        default_factory=list,
        description="Also write GGUF files of these types with llama.cpp's converter and quantizer (f32, bf16, f16, q8_0, "
        "q6_k, q5_k_m, q4_k_m, ...), and an Ollama Modelfile; needs distill[gguf] and full or merged weights.",
    )

    @field_validator("gguf")
    @classmethod
    def _known_gguf_types(cls, value: list[str]) -> list[str]:
        from students.gguf import GGUF_TYPES

        kinds = list(dict.fromkeys(kind.strip().lower() for kind in value))
        unknown = [kind for kind in kinds if kind not in GGUF_TYPES]
        if unknown:
            raise ValueError(f"unknown GGUF type {unknown[0]!r} (known: {', '.join(GGUF_TYPES)})")
        return kinds


# ---------------------------------------------------------------------------- run directory


def read_run(run_dir: Path) -> tuple[TrainManifest, Path, bool]:
    """(train.json, final/ path, whether final/ is a PEFT adapter); InputError when the layout is wrong."""
    final = run_dir / "final"
    if not run_dir.is_dir():
        raise InputError("no such run directory", where=str(run_dir))
    if not final.is_dir():
        raise InputError("not a finished training run (no final/ folder)", where=str(run_dir))
    info = TrainManifest.read(run_dir / "train.json")
    is_adapter = (final / "adapter_config.json").exists()
    if is_adapter and not info.base_model:
        adapter = json.loads((final / "adapter_config.json").read_text(encoding="utf-8"))
        info.base_model = adapter.get("base_model_name_or_path")
    if is_adapter and not info.base_model:
        raise InputError("adapter run without a base model", where=str(run_dir / "train.json"), field="base_model")
    return info, final, is_adapter


def load_dequantized_base(info: TrainManifest, dtype: str):
    """The base model as QLoRA training saw it: quantized to 4 bits, then dequantized to `dtype`."""
    import bitsandbytes as bnb
    import torch

    base = str(info.base_model)
    model = load_causal_lm(base, overrides=info.config_overrides, dtype=dtype)
    # Quantize from the dtype training loaded the weights in (NF4 block scales depend on it);
    # bnb quantizes on the GPU where there is one.
    source = {True: torch.bfloat16, False: torch.float32}.get(info.bf16, model.dtype)
    quantized = load_causal_lm(base, overrides=info.config_overrides, dtype=source, quantization=info.quantization or NF4)
    count = 0
    for name, module in quantized.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            weight = bnb.functional.dequantize_4bit(module.weight.data, module.weight.quant_state)
            target = model.get_submodule(name).weight
            target.data.copy_(weight.to(device=target.device, dtype=target.dtype))
            count += 1
    del quantized
    if count == 0:
        raise StageError(f"no 4-bit layers found when quantizing {base}; cannot rebuild the QLoRA base")
    return model


def load_merged(info: TrainManifest, final: Path, config: PublishConfig):
    """Base (dequantized for QLoRA) + adapter, merged into plain weights."""
    from peft import PeftModel

    if info.method == "qlora" and config.qlora_merge == "dequantized":
        model = load_dequantized_base(info, config.dtype)
    else:
        model = load_causal_lm(str(info.base_model), overrides=info.config_overrides, dtype=config.dtype)
    return PeftModel.from_pretrained(model, str(final)).merge_and_unload()


# ---------------------------------------------------------------------------- run


def run(config: PublishConfig, api=None) -> dict[str, Any]:
    """Write the publishable folder (and push it if asked); returns a summary.

    `api` is the huggingface_hub client for --push (default: a new `HfApi()`).
    """
    from rich.console import Console

    from students.model_card import plot_loss, render_card

    console = Console(stderr=True)
    output = config.output
    check_io([Out(output, "output", kind="dir", replace=not config.card_only)], named_paths(config, skip=("output",)))
    if inside(Path(os.path.realpath(output)), Path(os.path.realpath(config.run_dir))):  # RUN/final, a checkpoint: the run itself
        raise InputError(f"is inside the run it publishes ({config.run_dir}); write outside it", where=str(output), field="output")
    info, final, is_adapter = read_run(config.run_dir)
    if info.base_model and is_adapter:  # merging reads the base: it must not be inside what is replaced
        check_io([Out(output, "output", kind="dir", replace=not config.card_only)], named_paths([str(info.base_model)]))
    if config.card_only:
        kind, fmt = _refresh_card(config, info, is_adapter, _card_inputs(config))
        return _finish(config, kind, fmt, api)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        if not config.overwrite:
            raise InputError("output exists and is not empty (use --overwrite to replace it)", where=str(output))
        if not published_by(output, "publish"):  # --overwrite replaces what publish wrote, never anything else
            raise InputError(f"holds files that are not a published model (no {MARK}, which publish writes); "
                             "publish replaces only the folders it wrote", where=str(output), field="output")
    card_inputs = _card_inputs(config)  # read (and validate) everything before the slow part
    if config.gguf:
        if is_adapter and not config.merge:
            raise InputError("GGUF files need the full weights: add --merge to merge the adapter", field="gguf")
        converter()  # installed and cached (fetched once) before anything is written

    with staged(output, "publish") as staging:  # built beside OUTPUT, checked for secrets, then moved into place
        kind = _write_weights(config, info, final, is_adapter, staging, console)
        fmt = _write_tokenizer_and_generation(final, info, staging, is_adapter)
        plot = "training_loss.png" if plot_loss(info.model_dump(), staging / "training_loss.png") else None
        ggufs = {kind: file_name(_stem(config), kind) for kind in config.gguf}
        card = render_card(config, info.model_dump(), kind=kind, chat_format=fmt, loss_plot=plot, gguf=ggufs, **card_inputs)
        (staging / "README.md").write_text(redact(card), encoding="utf-8")
        if ggufs:  # from the finished folder: the GGUF carries its card metadata and inference template
            with console.status("writing GGUF files") as status:
                export(staging, staging, config.gguf, _stem(config), status=status.update)
            _write_modelfile(staging, fmt, ggufs, info.max_seq_length)

    return _finish(config, kind, fmt, api)


def _finish(config: PublishConfig, kind: str, fmt: str, api) -> dict[str, Any]:
    files = sorted(p.name for p in config.output.iterdir())
    summary: dict[str, Any] = {"output": str(config.output), "kind": kind, "chat_format": fmt, "files": files}
    if config.push:
        summary["url"] = push(config.output, config.push, config.private, api=api)
    return summary


def _refresh_card(config: PublishConfig, info: TrainManifest, is_adapter: bool, card_inputs: dict[str, Any]) -> tuple[str, str]:
    """Rewrite the card of a folder published earlier; weights and tokenizer stay as they are."""
    from transformers import AutoTokenizer

    from students.model_card import plot_loss, render_card

    output = config.output
    if not published_by(output, "publish"):  # a card is rewritten only in a folder publish wrote
        raise InputError(f"not a folder publish wrote (no {MARK}); publish it first", where=str(output))
    kind = "adapter" if (output / "adapter_config.json").exists() else "merged" if is_adapter else "full"
    fmt = info.template if info.template in INFERENCE_TEMPLATES else template_format(AutoTokenizer.from_pretrained(output))
    staging = output / f".card.tmp-{os.getpid()}"
    staging.mkdir(exist_ok=True)
    try:
        plot = "training_loss.png" if plot_loss(info.model_dump(), staging / "training_loss.png") else None
        ggufs = {path.stem.rsplit("-", 1)[-1].lower(): path.name for path in sorted(output.glob("*.gguf"))}
        card = render_card(config, info.model_dump(), kind=kind, chat_format=fmt, loss_plot=plot, gguf=ggufs, **card_inputs)
        (staging / "README.md").write_text(redact(card), encoding="utf-8")
        assert_no_secrets(staging)
        for path in staging.iterdir():
            os.replace(path, output / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return kind, fmt


def _card_inputs(config: PublishConfig) -> dict[str, Any]:
    recipe = config.recipe_file or (config.run_dir / "recipe.yaml")
    recipe_text = None
    if config.recipe_file or recipe.exists():
        try:
            recipe_text = recipe.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read recipe ({exc.strerror})", where=str(recipe)) from None
    filter_report = read_json(config.filter_report) if config.filter_report else None
    evals = [read_json(path) for path in config.eval]
    return {"recipe_text": recipe_text, "filter_report": filter_report, "evals": evals}


def _write_weights(config: PublishConfig, info: TrainManifest, final: Path, is_adapter: bool, out: Path, console) -> str:
    if is_adapter and not config.merge:
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            if not (final / name).exists():
                raise InputError(f"adapter run without {name} (save adapters as safetensors)", where=str(final))
            shutil.copy2(final / name, out / name)
        return "adapter"
    with console.status("merging the adapter into the base weights" if is_adapter else "re-saving the weights"):
        model = load_merged(info, final, config) if is_adapter else load_causal_lm(str(final), dtype=config.dtype)
        model.config.use_cache = True  # training turns the KV cache off; inference wants it
        model.save_pretrained(out, max_shard_size=config.max_shard_size)
    return "merged" if is_adapter else "full"


def _write_tokenizer_and_generation(final: Path, info: TrainManifest, out: Path, is_adapter: bool) -> str:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(final)
    fmt = info.template if info.template in INFERENCE_TEMPLATES else template_format(tokenizer)
    tokenizer.chat_template = INFERENCE_TEMPLATES[fmt]
    tokenizer.save_pretrained(out)
    # Training saves the stop ids into final/; an adapter run from a local base may lack them.
    source = final
    if not (final / "generation_config.json").exists() and is_adapter and Path(str(info.base_model)).is_dir():
        source = Path(str(info.base_model))
    generation_config(source, tokenizer, fmt, info.stop_token_ids).save_pretrained(out)
    return fmt


def _stem(config: PublishConfig) -> str:
    """GGUF file names start with the model's name (the repo's, when pushed)."""
    name = (config.model_name or config.push or config.output.name).rstrip("/").rsplit("/", 1)[-1]
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name).strip("-.") or "model"


def _write_modelfile(folder: Path, fmt: str, ggufs: dict[str, str], max_length: int | None) -> None:
    """The Ollama Modelfile beside the GGUF files, stopping where generation_config.json stops."""
    from transformers import AutoTokenizer

    from students.modelfile import pick_gguf, render_modelfile

    tokenizer = AutoTokenizer.from_pretrained(folder)
    stops = json.loads((folder / "generation_config.json").read_text(encoding="utf-8")).get("eos_token_id") or []
    names = [tokenizer.convert_ids_to_tokens(i) for i in (stops if isinstance(stops, list) else [stops])]
    chosen = pick_gguf(ggufs)
    text = render_modelfile(CHAT_FORMATS[fmt], chosen, [CHAT_FORMATS[fmt].end_of_turn, *names], max_length,
                            others=[name for name in ggufs.values() if name != chosen])
    (folder / "Modelfile").write_text(text, encoding="utf-8")


def present(summary: dict[str, Any], config: PublishConfig) -> None:
    print(f"published {summary['kind']} model to {summary['output']} ({len(summary['files'])} files)"
          + (f"; pushed to {summary['url']}" if summary.get("url") else ""))


STAGES = (
    Stage(
        name="publish", section="publish", default_run=True, config=PublishConfig, run=run,
        reads={"run_dir": "student_run", "filter_report": "filter_report", "recipe_file": "recipe"},
        writes={"output": "model"}, produces={"model": "model"},
        in_run={"overwrite": True},  # the pipeline owns RUN_DIR/publish: a re-run replaces it
        command=Command("Merge adapters, add the inference template, generation config and model card; optionally push.", ("run_dir",), present),
    ),
)
