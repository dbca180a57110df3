"""The `distill` command. Thin on purpose: parse options, resolve the recipe, call the stage.

Every stage is a function over records that lives in its own module; this file only wires
flags to it. Heavy libraries (torch, vllm, transformers) are imported inside the commands so
that `distill --help` and bad-input errors are instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from distill.errors import EXIT_BAD_INPUT, InputError, StageError

app = typer.Typer(
    name="distill",
    help="Distil long chain-of-thought reasoning from a teacher into small dense students.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

RecipeOption = typer.Option(None, "--recipe", help="YAML recipe; flags given here override it.", exists=False)
PrintConfigOption = typer.Option(False, "--print-config", help="Print the resolved configuration and exit.")


def resolved(model: type, recipe: Path | None, section: str, print_config: bool, /, **overrides: Any):
    """Resolve a stage's configuration (recipe section, then flags); print and exit if asked.

    Positional-only parameters, so that a stage field may be called `model` or `recipe`.
    """
    from distill.config import dump, resolve

    config = resolve(model, recipe, section, overrides)
    if print_config:
        typer.echo(dump(config), nl=False)
        raise typer.Exit(0)
    return config


def _show_version(value: bool) -> None:
    if value:
        from distill import __version__

        typer.echo(f"distill {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Show the version and exit.", is_eager=True, callback=_show_version),
) -> None:
    """Distil long chain-of-thought reasoning from a teacher into small dense students."""


# --- stage commands are registered below, one block per stage ----------------------------


@app.command("generate")
def generate_command(
    prompts: str = typer.Argument(None, help="Prompts: JSONL, JSON, Parquet, a saved dataset folder or a hub id."),
    output: Path = typer.Option(None, "--output", "-o", help="Output JSONL (appended to: re-running resumes)."),
    teacher: str = typer.Option(None, "--teacher", "-m", help="Model path/id (vllm) or served model name (openai)."),
    backend: str = typer.Option(None, "--backend", help="vllm (in-process engine) or openai (any OpenAI-compatible endpoint)."),
    base_url: str = typer.Option(None, "--base-url", help="Endpoint root for --backend openai, e.g. http://127.0.0.1:8000/v1."),
    api_key_env: str = typer.Option(None, "--api-key-env", help="Environment variable holding the API key (default OPENAI_API_KEY)."),
    api: str = typer.Option(None, "--api", help="openai: chat (default) or completions (prompt rendered here, with the prefill)."),
    n: int = typer.Option(None, "--n", "-n", help="Samples per prompt (default 4)."),
    temperature: float = typer.Option(None, "--temperature", help="Sampling temperature (default 0.6)."),
    top_p: float = typer.Option(None, "--top-p", help="Nucleus sampling (default 0.95)."),
    max_tokens: int = typer.Option(None, "--max-tokens", help="Most new tokens per sample (default 32768)."),
    seed: int = typer.Option(None, "--seed", help="Engine seed (default 0)."),
    shard: str = typer.Option(None, "--shard", help="I/N: this process takes every N-th prompt from I (0-based)."),
    limit: int = typer.Option(None, "--limit", help="Only the first N prompts (after sharding)."),
    split: str = typer.Option(None, "--split", help="Dataset split (default train)."),
    field_problem: str = typer.Option(None, "--field-problem", help="Column with the prompt (default problem)."),
    field_answer: str = typer.Option(None, "--field-answer", help="Column with the reference answer (default answer)."),
    field_id: str = typer.Option(None, "--field-id", help="Column with the problem id (default: hash of the prompt)."),
    system_prompt: str = typer.Option(None, "--system-prompt", help="System message (R1 recommends none)."),
    prompt_template: str = typer.Option(None, "--prompt-template", help="User turn around '{problem}'."),
    math_instruction: str = typer.Option(None, "--math-instruction", help="Appended to math prompts ('' for none)."),
    think_prefill: str = typer.Option(None, "--think-prefill", help="Response prefill (default '<think>\\n'; '' for none)."),
    tokenizer: str = typer.Option(None, "--tokenizer", help="Tokenizer path/id (default: the teacher's)."),
    tensor_parallel_size: int = typer.Option(None, "--tensor-parallel-size", "--tp", help="GPUs per replica (tensor parallel)."),
    pipeline_parallel_size: int = typer.Option(None, "--pipeline-parallel-size", "--pp", help="Pipeline stages."),
    distributed_executor_backend: str = typer.Option(None, "--distributed-executor-backend", help="mp or ray (ray spans nodes)."),
    max_model_len: int = typer.Option(None, "--max-model-len", help="Context length (default: the model's)."),
    gpu_memory_utilization: float = typer.Option(None, "--gpu-memory-utilization", help="Fraction of GPU memory for vLLM (default 0.9)."),
    kv_cache_memory_bytes: int = typer.Option(None, "--kv-cache-memory-bytes", help="KV cache bytes (overrides the fraction; use on CPU)."),
    dtype: str = typer.Option(None, "--dtype", help="auto, bfloat16, float16, float32."),
    quantization: str = typer.Option(None, "--quantization", help="vLLM quantization method (awq, gptq, fp8...)."),
    enable_prefix_caching: bool = typer.Option(None, "--prefix-caching/--no-prefix-caching", help="Share the prompt KV cache between samples."),
    enforce_eager: bool = typer.Option(None, "--enforce-eager", help="Disable CUDA graphs."),
    max_num_seqs: int = typer.Option(None, "--max-num-seqs", help="Most sequences scheduled at once."),
    reproducible: bool = typer.Option(None, "--reproducible", help="Same samples on every run (vLLM engine core in-process)."),
    concurrency: int = typer.Option(None, "--concurrency", help="openai: requests in flight (default 64)."),
    request_timeout: float = typer.Option(None, "--request-timeout", help="openai: seconds per request (default 1800)."),
    max_retries: int = typer.Option(None, "--max-retries", help="openai: retries per request (default 8)."),
    recipe: Path = RecipeOption,
    print_config: bool = PrintConfigOption,
) -> None:
    """Sample chain-of-thought traces from the teacher (R1 defaults), resumable and sharded."""
    from teacher.config import GenerateConfig

    fields = {k: v for k, v in {"problem": field_problem, "answer": field_answer, "id": field_id}.items() if v is not None}
    if fields and recipe is not None:  # field flags refine the recipe's mapping instead of replacing it
        from distill.config import load_yaml

        fields = {**((load_yaml(recipe).get("generate") or {}).get("fields") or {}), **fields}
    config = resolved(
        GenerateConfig, recipe, "generate", print_config, prompts=prompts, output=output, teacher=teacher, backend=backend,
        base_url=base_url, api_key_env=api_key_env, api=api, n=n, temperature=temperature, top_p=top_p,
        max_tokens=max_tokens, seed=seed, shard=shard, limit=limit, split=split, fields=fields or None,
        system_prompt=system_prompt, prompt_template=prompt_template, math_instruction=math_instruction,
        think_prefill=think_prefill, tokenizer=tokenizer, tensor_parallel_size=tensor_parallel_size,
        pipeline_parallel_size=pipeline_parallel_size, distributed_executor_backend=distributed_executor_backend,
        max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
        kv_cache_memory_bytes=kv_cache_memory_bytes, dtype=dtype, quantization=quantization,
        enable_prefix_caching=enable_prefix_caching, enforce_eager=enforce_eager, max_num_seqs=max_num_seqs,
        reproducible=reproducible, concurrency=concurrency, request_timeout=request_timeout, max_retries=max_retries,
    )
    from rich.console import Console

    from teacher.generate import run
    from teacher.progress import summary_table

    console = Console(stderr=True)
    summary = run(config, console=console)
    console.print(summary_table(summary))


@app.command("merge")
def merge_command(
    shards: list[Path] = typer.Argument(..., help="Shard outputs of `distill generate --shard` (JSONL)."),
    output: Path = typer.Option(..., "--output", "-o", help="Merged file (.jsonl or .parquet), written atomically."),
) -> None:
    """Merge generate shards into one file: each sample once, torn last lines dropped."""
    from teacher.store import merge_shards

    summary = merge_shards(list(shards), output)
    typer.echo(f"merged {summary['records']:,} records from {len(shards)} files into {summary['output']}"
               f" ({summary['duplicates_dropped']} duplicates, {summary['torn_lines_dropped']} torn lines dropped)")


@app.command("publish")
def publish_command(
    run_dir: Path = typer.Argument(None, help="Training run directory (final/ and train.json)."),
    output: Path = typer.Option(None, "--output", "-o", help="Folder to write the publishable model into."),
    merge: bool = typer.Option(None, "--merge/--no-merge", help="Merge a LoRA/QLoRA adapter into the base weights."),
    qlora_merge: str = typer.Option(None, "--qlora-merge", help="QLoRA: merge into the 'dequantized' 4-bit base (default) or the 'original' weights."),
    dtype: str = typer.Option(None, "--dtype", help="Saved dtype: auto, bfloat16, float16, float32."),
    max_shard_size: str = typer.Option(None, "--max-shard-size", help="Largest safetensors shard (default 5GB)."),
    push: str = typer.Option(None, "--push", help="Upload to this Hugging Face repo id (token from HF_TOKEN or `hf auth login`)."),
    private: bool = typer.Option(None, "--private", help="Create the pushed repo as private."),
    overwrite: bool = typer.Option(None, "--overwrite", help="Replace an existing non-empty output folder."),
    card_only: bool = typer.Option(None, "--card-only", help="Only rewrite the model card of an existing output (e.g. to add --eval)."),
    model_name: str = typer.Option(None, "--name", help="Title of the model card."),
    license: str = typer.Option(None, "--license", help="License id for the card metadata."),
    datasets: list[str] = typer.Option(None, "--dataset", help="Hub id of the training data (repeatable)."),
    recipe_file: Path = typer.Option(None, "--recipe-file", help="Recipe to show in the card (default: RUN_DIR/recipe.yaml)."),
    filter_report: Path = typer.Option(None, "--filter-report", help="Filter report JSON for the card."),
    eval_summaries: list[Path] = typer.Option(None, "--eval", help="`distill eval` summary.json for the card (repeatable)."),
    recipe: Path = RecipeOption,
    print_config: bool = PrintConfigOption,
) -> None:
    """Merge adapters, add the inference template, generation config and model card; optionally push."""
    from students.publish import PublishConfig, run

    config = resolved(
        PublishConfig, recipe, "publish", print_config, run_dir=run_dir, output=output, merge=merge, qlora_merge=qlora_merge,
        dtype=dtype, max_shard_size=max_shard_size, push=push, private=private, overwrite=overwrite, card_only=card_only, model_name=model_name,
        license=license, datasets=datasets or None, recipe_file=recipe_file, filter_report=filter_report, eval=eval_summaries or None,
    )
    summary = run(config)
    typer.echo(f"published {summary['kind']} model to {summary['output']} ({len(summary['files'])} files)"
               + (f"; pushed to {summary['url']}" if summary.get("url") else ""))


@app.command("eval")
def eval_command(
    model: str = typer.Argument(None, help="Model folder (vllm) or served model name (openai)."),
    benchmarks: list[str] = typer.Option(None, "--benchmark", "-b", help="Benchmark file (problem, answer) or name: aime24, amc23, math500. Repeatable."),
    output_dir: Path = typer.Option(None, "--output-dir", "-o", help="Results folder (default: eval/<model name>)."),
    k: int = typer.Option(None, "--k", help="Samples per problem (default 4)."),
    max_tokens: int = typer.Option(None, "--max-tokens", help="Most new tokens per sample (default 32768)."),
    temperature: float = typer.Option(None, "--temperature", help="Sampling temperature (default 0.6)."),
    top_p: float = typer.Option(None, "--top-p", help="Nucleus sampling (default 0.95)."),
    backend: str = typer.Option(None, "--backend", help="vllm (local engine) or openai (endpoint)."),
    base_url: str = typer.Option(None, "--base-url", help="Endpoint URL for --backend openai."),
    limit: int = typer.Option(None, "--limit", help="Only the first N problems of each benchmark."),
    seed: int = typer.Option(None, "--seed", help="Sampling seed."),
    workers: int = typer.Option(None, "--workers", help="Answer-checking processes."),
    recipe: Path = RecipeOption,
    print_config: bool = PrintConfigOption,
) -> None:
    """Score a model with the R1 protocol: k samples/problem, pass@1 and cons@k, same checker as the filter."""
    from distill.evaluate import EvalConfig, run

    if output_dir is None and model is not None and recipe is None:
        output_dir = Path("eval") / Path(model.rstrip("/")).name
    config = resolved(
        EvalConfig, recipe, "eval", print_config, model=model, benchmarks=benchmarks or None, output_dir=output_dir, k=k,
        max_tokens=max_tokens, temperature=temperature, top_p=top_p, backend=backend, base_url=base_url, limit=limit,
        seed=seed, workers=workers,
    )
    summary = run(config)
    typer.echo(f"results in {config.output_dir} (summary.json, eval_table.md, per-problem JSONL); "
               + ", ".join(f"{name} pass@1 {100 * b['pass@1']:.1f}" for name, b in summary["benchmarks"].items()))


# --- filter / inspect (distill/filters/, distill/inspect.py) ---


@app.command("filter")
def filter_command(
    input: str = typer.Argument(None, help="Trace records (JSONL, JSON, Parquet or a saved dataset)."),
    output: str = typer.Option(None, "-o", "--output", help="Kept records (.jsonl or .parquet)."),
    rejected: str = typer.Option(None, "--rejected", help="Rejected records with rejected_by and reason."),
    report: str = typer.Option(None, "--report", help="Report as JSON."),
    rules: str = typer.Option(None, "--rules", help="Comma-separated rules, in order (default: all, cheap first)."),
    workers: int = typer.Option(None, "--workers", help="Worker processes."),
    all_verdicts: bool = typer.Option(None, "--all-verdicts/--first-rejection", help="Evaluate every rule."),
    delimiters: str = typer.Option(None, "--delimiters", help="Reasoning delimiters: r1 or sky-t1."),
    min_length: int = typer.Option(None, "--min-length", help="length: minimum completion length."),
    max_length: int = typer.Option(None, "--max-length", help="length: maximum completion length."),
    length_unit: str = typer.Option(None, "--length-unit", help="length: tokens or chars."),
    tokenizer: str = typer.Option(None, "--tokenizer", help="length: tokenizer for unit=tokens."),
    language: str = typer.Option(None, "--language", help="language: target language for every record (ISO 639-1)."),
    language_threshold: float = typer.Option(None, "--language-threshold", help="language: minimum target-language share."),
    max_paragraph_chars: int = typer.Option(None, "--max-paragraph-chars", help="readability: longest paragraph."),
    timeout: float = typer.Option(None, "--timeout", help="correctness: seconds per verification (hard kill)."),
    no_reference: str = typer.Option(None, "--no-reference", help="correctness: reject, keep or majority."),
    max_per_problem: int = typer.Option(None, "--max-per-problem", help="dedup: keep at most K samples per problem."),
    benchmarks: str = typer.Option(None, "--benchmarks", help="decontaminate: comma-separated benchmark files."),
    ngram: int = typer.Option(None, "--ngram", help="decontaminate: word n-gram size."),
    recipe: Path = RecipeOption,
    print_config: bool = PrintConfigOption,
) -> None:
    """Judge traces with named rules; write kept (SFT-ready) and rejected records and a report."""
    from distill.config import dump, validate
    from distill.filters.config import FilterConfig
    from distill.filters.report import print_report
    from distill.filters.stage import run

    split = lambda text: [part.strip() for part in text.split(",") if part.strip()] if text else None  # noqa: E731
    config = resolved(
        FilterConfig, recipe, "filter", False, input=input, output=output, rejected=rejected, report=report,
        rules=split(rules), workers=workers, all_verdicts=all_verdicts, delimiters=delimiters,
    )
    nested = {
        "length": {"min": min_length, "max": max_length, "unit": length_unit, "tokenizer": tokenizer},
        "language": {"target": language, "threshold": language_threshold},
        "readability": {"max_paragraph_chars": max_paragraph_chars},
        "correctness": {"timeout": timeout, "no_reference": no_reference},
        "dedup": {"max_per_problem": max_per_problem},
        "decontaminate": {"benchmarks": split(benchmarks), "ngram": ngram},
    }
    values = config.model_dump()
    for section, flags in nested.items():
        values[section].update({k: v for k, v in flags.items() if v is not None})
    config = validate(FilterConfig, values, where="command line")
    if print_config:
        typer.echo(dump(config), nl=False)
        raise typer.Exit(0)
    print_report(run(config))


@app.command("inspect")
def inspect_command(
    file: str = typer.Argument(..., help="Records to look at (kept, rejected or raw traces)."),
    id: str = typer.Option(None, "--id", help="Show the record with this id (or problem_id)."),
    rejected_by: str = typer.Option(None, "--rejected-by", help="Only records rejected by this rule."),
    sample: int = typer.Option(None, "--sample", help="Show K records picked at random (seed 0)."),
    delimiters: str = typer.Option("r1", "--delimiters", help="Reasoning delimiters: r1 or sky-t1."),
    full: bool = typer.Option(False, "--full", help="Show the whole reasoning instead of its head and tail."),
) -> None:
    """Read records as a person wants to: problem, reasoning, answer, reference, verdicts; and a file summary."""
    from distill.inspect import inspect

    inspect(file, record_id=id, rejected_by=rejected_by, sample=sample, delimiters=delimiters, full=full)


# --- train / students (students/) ---


@app.command("students")
def students_command() -> None:
    """List the student presets (base model, template, defaults, method and GPUs that fit)."""
    from rich.console import Console

    from students.report import students_table

    Console().print(students_table())


@app.command("train")
def train_command(
    student: str = typer.Option(None, "--student", "-s", help="Student preset (see `distill students`)."),
    data: str = typer.Option(None, "--data", "-d", help="Kept traces: JSONL/Parquet/dataset with messages or problem + completion."),
    output_dir: str = typer.Option(None, "--output", "-o", help="Run directory (final/, train.json, checkpoints/)."),
    lora: bool = typer.Option(False, "--lora", help="Train a LoRA adapter instead of all weights."),
    qlora: bool = typer.Option(False, "--qlora", help="QLoRA: 4-bit NF4 base (double quant, bf16 compute) + LoRA adapter."),
    base_model: str = typer.Option(None, "--base-model", help="Path or hub id overriding the preset's base model."),
    template: str = typer.Option(None, "--template", help="Training chat template: chatml, llama3 or r1."),
    max_length: int = typer.Option(None, "--max-length", help="Longest sequence in tokens; longer samples are dropped and counted."),
    learning_rate: float = typer.Option(None, "--lr", help="Peak learning rate (default: preset)."),
    epochs: float = typer.Option(None, "--epochs", help="Epochs (default: preset)."),
    max_steps: int = typer.Option(None, "--max-steps", help="Stop after N optimizer steps."),
    batch_size: int = typer.Option(None, "--batch-size", help="Packed sequences per GPU per micro-step (default 1)."),
    grad_accum: int = typer.Option(None, "--grad-accum", help="Gradient accumulation (default: reach the preset's global batch)."),
    warmup_ratio: float = typer.Option(None, "--warmup-ratio", help="Share of steps with warmup (default 0.03)."),
    no_packing: bool = typer.Option(False, "--no-packing", help="Padded batches instead of padding-free packing."),
    no_checkpointing: bool = typer.Option(False, "--no-gradient-checkpointing", help="Keep all activations (faster, more memory)."),
    lora_r: int = typer.Option(None, "--lora-r", help="LoRA rank (default 64)."),
    lora_alpha: int = typer.Option(None, "--lora-alpha", help="LoRA alpha (default 128)."),
    lora_dropout: float = typer.Option(None, "--lora-dropout", help="LoRA dropout (default 0.05)."),
    lora_targets: str = typer.Option(None, "--lora-targets", help="Comma-separated module names, or all-linear (default)."),
    eval_data: str = typer.Option(None, "--eval-data", help="Eval file (default: hold out --eval-fraction of the problems)."),
    eval_fraction: float = typer.Option(None, "--eval-fraction", help="Share of problems held out for eval loss (default 0.02)."),
    save_steps: int = typer.Option(None, "--save-steps", help="Checkpoint every N steps (default 200)."),
    report_to: str = typer.Option(None, "--report-to", help="none, tensorboard or wandb."),
    seed: int = typer.Option(None, "--seed", help="Seed (default 42)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in the run directory."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a finished run in the run directory."),
    plan: bool = typer.Option(False, "--plan", help="Print predicted memory per GPU for full/LoRA/QLoRA and exit."),
    gpus: int = typer.Option(None, "--gpus", help="GPUs for the planner (default: visible GPUs, else the preset's)."),
    gpu_memory: float = typer.Option(None, "--gpu-memory", help="GiB per GPU for the planner (default: detected, else 80)."),
    sharding: str = typer.Option(None, "--sharding", help="Planner sharding: none, zero2, zero3, zero3-offload, fsdp."),
    recipe: Path = RecipeOption,
    print_config: bool = PrintConfigOption,
) -> None:
    """Fine-tune a student on kept traces (full, --lora or --qlora), with packing and checkpoints."""
    from rich.console import Console

    from students.config import TrainConfig

    if lora and qlora:
        raise InputError("choose one of --lora and --qlora")
    config = resolved(
        TrainConfig, recipe, "train", print_config,
        student=student, data=data, output_dir=output_dir, base_model=base_model, template=template,
        method="qlora" if qlora else "lora" if lora else None,
        max_length=max_length, learning_rate=learning_rate, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
        grad_accum=grad_accum, warmup_ratio=warmup_ratio, packing=False if no_packing else None,
        gradient_checkpointing=False if no_checkpointing else None, lora_r=lora_r, lora_alpha=lora_alpha,
        lora_dropout=lora_dropout, lora_targets=lora_targets.split(",") if lora_targets and lora_targets != "all-linear" else lora_targets,
        eval_data=eval_data, eval_fraction=eval_fraction, save_steps=save_steps, report_to=report_to, seed=seed,
        resume=resume or None, overwrite=overwrite or None, gpus=gpus, gpu_memory_gib=gpu_memory, sharding=sharding,
    )
    console = Console()
    if plan:
        from students.report import plan_report

        plan_report(config, console)
        return
    from students.report import summary_table
    from students.train import run

    summary = run(config)
    if summary:
        console.print(summary_table(summary))


# --- run (distill/pipeline.py) ---


@app.command("run")
def run_command(
    recipe: Path = typer.Argument(..., help="Recipe YAML (see recipes/)."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Run directory (default: the recipe's run.output_dir, else runs/NAME)."),
    start: str | None = typer.Option(None, "--from", help="Redo this stage and every stage after it."),
    until: str | None = typer.Option(None, "--until", help="Stop after this stage."),
    sets: list[str] | None = typer.Option(None, "--set", help="Override a recipe value: SECTION.KEY=VALUE (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate every stage's settings and show the plan; loads no model."),
    print_config: bool = PrintConfigOption,
) -> None:
    """Run a recipe's stages (generate, filter, train, publish, eval) in one run directory; unchanged stages are skipped."""
    from rich.console import Console

    from distill.config import dump
    from distill.pipeline import execute, plan
    from distill.pipeline_log import describe, plan_table, summary_table

    ctx, planned = plan(recipe, output, start, until, sets)
    console = Console(stderr=True)
    if print_config:
        for item in planned:
            typer.echo(f"# --- {item.name}\n{item.name}:")
            typer.echo("".join(f"  {line}\n" for line in dump(item.config).splitlines()), nl=False)
        return
    rows = describe(ctx, planned)
    if dry_run:
        console.print(plan_table(ctx, rows))
        for row in rows:
            for path in row["missing"]:
                typer.echo(f"note: {row['stage']} reads {path}, which is not found yet (needed when the stage runs)")
        typer.echo(f"settings valid for {len(rows)} stage(s) of {recipe}; dry run: nothing loaded, nothing written")
        return
    for row in rows:  # fail before any stage runs, not hours into the run
        if row["missing"] and not row["action"].startswith("skip"):
            raise InputError(f"stage '{row['stage']}' reads {row['missing'][0]}, which does not exist", where=str(recipe))
    results = execute(ctx, planned, recipe.read_text(encoding="utf-8"), console)
    console.print(summary_table(ctx, results))


def main() -> None:
    """Entry point: user mistakes become one line on stderr and exit code 2, never a traceback."""
    try:
        app()
    except InputError as exc:
        # `!r` must not sit inside the conditional: in an f-string it applies to the whole
        # expression and wrapped every message in quotes.
        message = str(exc).splitlines()[0] if str(exc) else repr(exc)
        sys.stderr.write(f"error: {message}\n")
        sys.exit(EXIT_BAD_INPUT)
    except StageError as exc:
        sys.stderr.write(f"failed: {exc}\n")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
