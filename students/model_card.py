"""The model card (README.md) `distill publish` writes: Hugging Face metadata, then how the model
was made (recipe, data filtering, training) and how it scores (the `distill eval` table).

Everything shown is read from files (train.json, the recipe, the filter report, eval
summaries); values that look like credentials are redacted before they reach the card.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from distill.core.hub import is_hub_id

# Licenses of the student presets' bases (students/presets.py), for the card's metadata.
LICENSES = {"qwen": "apache-2.0", "llama-8b": "llama3.1", "llama-70b": "llama3.3"}
# Keys whose values are credentials (api_key, hf_token, ...); not eos_token or tokens_seen.
_SECRET_KEY = re.compile(r"(api[_-]?key|secret|passw(or)?d|^token|(^|[_-])(hf|hub|access|auth|api|bearer)[_-]?token)$", re.IGNORECASE)


def default_license(info: dict[str, Any]) -> str:
    student = str(info.get("student") or "")
    return LICENSES.get(student) or LICENSES.get(student.split("-")[0]) or "other"


def redact(value: Any) -> Any:
    """Drop the values of keys that name credentials (api_key, token, ...), recursively."""
    if isinstance(value, dict):
        return {k: ("<redacted>" if _SECRET_KEY.search(str(k)) and v else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _flat_figures(doc: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Scalar figures of a JSON document as (dotted key, value) rows (nested dicts flattened)."""
    rows: list[tuple[str, str]] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                rows += _flat_figures(value, name + ".")
            elif isinstance(value, (int, float, str, bool)) and value is not None:
                rows.append((name, _figure(value)))
    return rows


_ESCAPE_PIPE = {ord("|"): "\\|"}  # a '|' in a value would split its table cell


def _table(rows: list[tuple[str, str]], header: tuple[str, str] = ("", "")) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {k} | {v.translate(_ESCAPE_PIPE)} |" for k, v in rows]
    return "\n".join(lines)


def render_card(
    config,
    info: dict[str, Any],
    kind: str,
    chat_format: str,
    recipe_text: str | None = None,
    filter_report: Any = None,
    evals: list[dict[str, Any]] | None = None,
    loss_plot: str | None = None,
    gguf: dict[str, str] | None = None,
) -> str:
    """README.md text: YAML front matter for the hub, then the sections.

    `gguf`: quantization type -> GGUF file name, for the "Run it locally" section.
    """
    from distill.evaluate.stage import markdown_table

    info = redact(info)
    base = str(info.get("base_model") or "unknown")
    name = config.model_name or config.push or config.output.name
    method = str(info.get("method") or "full")
    meta: dict[str, Any] = {
        # The hub only accepts repo ids here; a base trained from a local folder is named in the text.
        "base_model": base if is_hub_id(base) else None,
        "license": config.license or default_license(info),
        "library_name": "peft" if kind == "adapter" else "transformers",
        "pipeline_tag": "text-generation",
        # how it was trained: on the teacher's traces (sft), or on its own samples scored by the teacher; then RL
        "tags": ["distill", "reasoning", "chain-of-thought", "on-policy-distillation" if info.get("onpolicy") else "sft",
                 *(["grpo"] if info.get("grpo") else []), method],
    }
    if config.datasets:
        meta["datasets"] = list(config.datasets)
    meta = {k: v for k, v in meta.items() if v is not None}
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)

    parts = [f"---\n{front}---\n", f"# {name}\n"]
    parts.append(
        f"A reasoning model distilled from long chain-of-thought traces into `{base}` "
        f"({_method_words(method, kind)}) with `distill`. It thinks first, "
        "inside `<think> ... </think>`, then answers.\n"
    )
    if info.get("grpo"):
        grpo = info["grpo"]
        weights = ", ".join(f"{name} {weight:g}" for name, weight in grpo["reward_weights"].items() if weight)
        parts.append(f"Training: SFT, then GRPO (`distill grpo`, {info['metrics'].get('steps')} steps, "
                     f"{grpo['num_generations']} completions per prompt, beta {grpo['beta']}) with R1's rule rewards, "
                     f"weighted {weights}.\n")
    parts.append(_usage(name, kind, base))
    if kind != "adapter":
        parts.append(_run_locally(name, gguf or {}, info.get("max_seq_length")))
    if kind == "merged" and method == "qlora":
        merge = config.qlora_merge
        parts.append(
            "## How the adapter was merged\n\nThe QLoRA adapter was trained against the base quantized to 4 bits. "
            + (
                "It was merged into the base *as training saw it* (quantized to NF4 as in training, then dequantized), "
                "so this model reproduces the trained adapter model; merging into the original weights would add the "
                "quantization error back.\n"
                if merge == "dequantized"
                else "It was merged into the original (unquantized) weights, so this model differs from the trained "
                "adapter model by the quantization error.\n"
            )
        )
    if evals:
        parts.append("## Evaluation\n\n" + _eval_notes(evals) + "\n\n" + markdown_table(evals) + "\n")
    parts.append("## Training\n\n" + _table(_training_rows(info), ("setting", "value")) + "\n")
    if filter_report is not None:
        rows = _flat_figures(redact(filter_report))
        if rows:
            parts.append("## Data filtering\n\nFigures from the filter report:\n\n" + _table(rows, ("figure", "value")) + "\n")
    if recipe_text:
        parts.append("## Recipe\n\n```yaml\n" + _redacted_recipe(recipe_text).rstrip() + "\n```\n")
    elif isinstance(info.get("config"), dict):
        train = yaml.safe_dump({"train": info["config"]}, sort_keys=False, allow_unicode=True)
        parts.append("## Recipe\n\nThe training configuration (no recipe file was given):\n\n```yaml\n" + train.rstrip() + "\n```\n")
    if loss_plot:
        parts.append(f"## Training loss\n\n![training loss]({loss_plot})\n")
    return "\n".join(parts)


def _method_words(method: str, kind: str) -> str:
    words = {"full": "full fine-tuning", "lora": "LoRA", "qlora": "QLoRA on a 4-bit NF4 base"}.get(method, method)
    return words + (", merged into the base weights" if kind == "merged" else ", adapter only" if kind == "adapter" else "")


def _usage(name: str, kind: str, base: str) -> str:
    if kind == "adapter":
        load = f'from peft import AutoPeftModelForCausalLM\nmodel = AutoPeftModelForCausalLM.from_pretrained("{name}")  # loads {base} first'
        serve = f"vllm serve {base} --enable-lora --lora-modules student={name}"
    else:
        load = f'from transformers import AutoModelForCausalLM\nmodel = AutoModelForCausalLM.from_pretrained("{name}")'
        serve = f"vllm serve {name} --generation-config auto"
    return (
        "## Usage\n\nSample with temperature 0.6 and top_p 0.95 (the defaults in `generation_config.json`); greedy "
        "decoding makes reasoning models repeat themselves. The chat template opens the answer with `<think>\\n` and "
        "drops the reasoning of earlier turns, as the DeepSeek-R1 distills do. Leave room for long outputs "
        "(up to 32k tokens).\n\n"
        f"```python\n{load}\n```\n\n```bash\n{serve}\n```\n"
    )


def _run_locally(name: str, gguf: dict[str, str], max_length: int | None) -> str:
    """Commands for Ollama, llama.cpp, vLLM and SGLang, run inside this folder."""
    from students.modelfile import context_window, pick_gguf

    window = context_window(max_length)
    tag = name.rstrip("/").rsplit("/", 1)[-1].lower()
    lines = ["## Run it locally\n",
             f"Commands to run inside this folder. Give the model a context window of {window} tokens: its reasoning "
             f"runs up to {max_length or 32768} tokens (its training length) after the prompt, and a shorter window "
             "cuts the conversation mid-thought, after which reasoning models loop.\n"]
    if gguf:
        chosen = pick_gguf(gguf)
        lines += [
            f"GGUF files written with llama.cpp: {', '.join(f'`{file}`' for file in gguf.values())}. `Modelfile` runs "
            f"`{chosen}` with this model's chat template (the answer opens with `<think>`), its stop tokens, temperature "
            "0.6, top_p 0.95 and that window.\n",
            "```bash\n# Ollama\n"
            f"ollama create {tag} -f Modelfile\nollama run {tag}\n\n"
            "# llama.cpp (--jinja: the chat template inside the GGUF)\n"
            f"llama-server -m {chosen} --jinja -c {window} --temp 0.6 --top-p 0.95\n"
            f"python -m llama_cpp.server --model {chosen} --n_ctx {window}   # llama-cpp-python, OpenAI-compatible\n```\n",
        ]
    lines.append(
        "```bash\n# vLLM (OpenAI-compatible server; sampling from generation_config.json)\n"
        f"vllm serve . --generation-config auto --max-model-len {window}\n\n"
        "# SGLang\n"
        f"python -m sglang.launch_server --model-path . --context-length {window}\n```\n"
    )
    return "\n".join(lines)


def _training_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key in ("student", "base_model", "method", "template", "max_seq_length", "data"):
        if info.get(key) is not None:
            rows.append((key, _figure(info[key])))
    for key, value in _flat_figures({"quantization": info.get("quantization") or {}, "metrics": info.get("metrics") or {}}):
        rows.append((key, value))
    # "config" is the whole TrainConfig: shown as YAML in the recipe section instead.
    known = {"student", "base_model", "method", "template", "max_seq_length", "data", "quantization", "metrics", "config", "stop_token_ids",
             "mixture"}
    rows += [(k, v) for k, v in _flat_figures({k: v for k, v in info.items() if k not in known})]
    return rows


def _eval_notes(evals: list[dict[str, Any]]) -> str:
    first = evals[0]
    k = first.get("k")
    r1 = " (the DeepSeek-R1 protocol)" if (first.get("temperature"), first.get("top_p"), first.get("max_tokens")) == (0.6, 0.95, 32768) else ""
    return (
        f"{k} samples per problem at temperature {first.get('temperature')}, top_p {first.get('top_p')}, up to "
        f"{first.get('max_tokens')} new tokens{r1}. pass@1 is the mean correctness over the "
        f"{k} samples, averaged over problems; cons@{k} is the majority-vote answer's correctness."
    )


def _redacted_recipe(text: str) -> str:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        doc = None
    if isinstance(doc, dict):
        return yaml.safe_dump(redact(doc), sort_keys=False, allow_unicode=True)
    return "\n".join("<redacted>" if _SECRET_KEY.search(line.split(":")[0].strip()) else line for line in text.splitlines())


def plot_loss(info: dict[str, Any], path) -> bool:
    """Training (and eval) loss curves from train.json as a PNG; False when there is no curve."""
    metrics = info.get("metrics") or {}
    curve, eval_curve = metrics.get("train_loss_curve") or [], metrics.get("eval_loss_curve") or []
    if len(curve) < 2:
        return False
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5), dpi=100)
    axis.plot([p[0] for p in curve], [p[1] for p in curve], label="train")
    if eval_curve:
        axis.plot([p[0] for p in eval_curve], [p[1] for p in eval_curve], "o-", label="eval")
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("loss")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True
