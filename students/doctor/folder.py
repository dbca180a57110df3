"""`distill doctor MODEL_DIR`: a model folder checked before it is served.

A published student or any Hugging Face model folder: what generation stops at, the sampling
it ships, its chat template against the training template of its turn format (rendered on R1
samples: a reasoning answer and a general one), and, when present, the Ollama Modelfile and the
GGUF files' metadata against both (`gguf_meta.py`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from distill.core.errors import InputError, StageError
from students.doctor import Check, fail, judged, ok, warn
from students.doctor.rendering import generation_prompt, keeps_earlier_reasoning, prefix_checks
from students.inference import CHAT_FORMATS, INFERENCE_TEMPLATES, RECOMMENDED_SAMPLING, template_format
from students.templates import TEMPLATES

PROBES = [
    [{"role": "user", "content": "What is 3 plus 4?"},
     {"role": "assistant", "content": "<think>\nI add 3 and 4 and get 7.\n</think>\n\nThe answer is \\boxed{7}."}],
    [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Say hello."},
     {"role": "assistant", "content": "<think>\n\n</think>\n\nHello!"}],  # a general turn, in R1's empty-reasoning form
]


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable ({exc})", where=str(path)) from None


def _ids(value: Any) -> list[int]:
    return [v for v in (value if isinstance(value, list) else [value]) if v is not None]


def folder_checks(model_dir: Path) -> list[Check]:
    from transformers import AutoTokenizer

    from students.onpolicy_teacher import end_of_turn

    config = _read_json(model_dir / "config.json")
    if config is None:
        raise InputError("not a model folder (no config.json)", where=str(model_dir))
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except Exception as exc:  # a folder without tokenizer files fails in many ways
        raise InputError(f"cannot load the tokenizer ({type(exc).__name__})", where=str(model_dir)) from None
    generation = _read_json(model_dir / "generation_config.json")
    source = "generation_config.json" if generation is not None else "config.json"
    stops = _ids((generation or config).get("eos_token_id"))
    jinja = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    if jinja is None:
        return [fail("chat template", "the tokenizer has no chat template", "publish with `distill publish` (it writes the R1 one)")]
    try:  # a user's template may refuse to render our sample conversations
        turn_end, opening = end_of_turn(tokenizer), generation_prompt(tokenizer, jinja)
    except Exception as exc:
        return [fail("chat template", f"does not render a user and an assistant turn ({type(exc).__name__}: {exc})",
                     "a chat template that renders user and assistant turns")]
    turn_token = tokenizer.convert_ids_to_tokens(turn_end) if turn_end is not None else None
    names = tokenizer.convert_ids_to_tokens(stops)
    checks = [
        judged("eos ids: end-of-turn stops generation", turn_end not in stops,
               f"the template ends an assistant turn with {turn_token} (id {turn_end}); {source} stops at {stops} ({', '.join(names)})",
               f"add {turn_end} to eos_token_id in {source}: without it the model runs on past its answer"),
        judged("pad vs eos", tokenizer.pad_token_id is not None and tokenizer.pad_token_id in (tokenizer.eos_token_id, turn_end),
               f"pad {tokenizer.pad_token} (id {tokenizer.pad_token_id}), eos {tokenizer.eos_token} (id {tokenizer.eos_token_id}), "
               f"end of turn {turn_token}",
               "serving is fine; train with a pad other than eos (a collator masking pad would mask the eos)", status="warn"),
        sampling_check(generation, model_dir / "Modelfile"),
    ]
    try:
        fmt = template_format(tokenizer)
        checks.append(prefix_checks(tokenizer, TEMPLATES[fmt].jinja, jinja, PROBES)[0])
    except StageError as exc:
        fmt = None
        checks.append(warn("template: prompt = training prefix", f"not compared: {exc}", "a ChatML, Llama-3 or R1 turn format"))
    keeps = keeps_earlier_reasoning(tokenizer, jinja)
    checks.append(judged("template: earlier turns", keeps, "the template " + ("keeps" if keeps else "drops") + " earlier turns' reasoning",
                         "drop it as R1's template does: the student never saw old reasoning in training", status="warn"))
    checks.append(context_check(config, model_dir / "Modelfile"))
    if (model_dir / "Modelfile").is_file():
        checks += modelfile_checks(model_dir / "Modelfile", model_dir, fmt, jinja, opening, turn_token, names)
    ggufs = sorted(model_dir.glob("*.gguf"))
    if ggufs:
        from students.doctor.gguf_meta import gguf_checks

        checks += gguf_checks(ggufs, jinja, turn_end, stops, config)
    return checks


def modelfile_fields(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    template = re.search(r'^TEMPLATE """(.*?)"""', text, re.S | re.M)
    params = dict(re.findall(r"^PARAMETER (temperature|top_p|num_ctx) (\S+)", text, re.M))
    return {"from": (re.findall(r"^FROM (.+)$", text, re.M) or [None])[0], "template": template.group(1) if template else None,
            "stops": re.findall(r'^PARAMETER stop "(.*)"\s*$', text, re.M), **params}


def sampling_check(generation: dict[str, Any] | None, modelfile: Path) -> Check:
    want = RECOMMENDED_SAMPLING
    found = {key: (generation or {}).get(key) for key in want}
    figure = f"generation_config: temperature {found['temperature']}, top_p {found['top_p']}, do_sample {found['do_sample']}"
    off = any(found[key] != value for key, value in want.items())
    if modelfile.is_file():
        fields = modelfile_fields(modelfile)
        figure += f"; Modelfile: temperature {fields.get('temperature')}, top_p {fields.get('top_p')}"
        off = off or any(fields.get(key) is None or float(fields[key]) != want[key] for key in ("temperature", "top_p"))
    return judged("sampling: R1's 0.6 / 0.95", off, figure, "temperature 0.6, top_p 0.95, do_sample true (DeepSeek's setting for "
                  "R1 distills: greedy decoding repeats itself)", status="warn")


def context_check(config: dict[str, Any], modelfile: Path) -> Check:
    from students.doctor.training import rope_of

    positions = config.get("max_position_embeddings")
    theta, kind = rope_of(config)
    figure = f"max_position_embeddings {positions}, rope_theta {theta}" + (f" ({kind})" if kind and kind != "default" else "")
    num_ctx = modelfile_fields(modelfile).get("num_ctx") if modelfile.is_file() else None
    if num_ctx is not None:
        figure += f"; Modelfile num_ctx {num_ctx}"
    return judged("context: positions", bool(positions and num_ctx and int(num_ctx) > positions), figure,
                  f"PARAMETER num_ctx {positions} or less: positions past max_position_embeddings were never trained", status="warn")


def modelfile_checks(path: Path, model_dir: Path, fmt: str | None, jinja: str, opening: str, turn_token: str | None,
                     names: list[str]) -> list[Check]:
    from students.modelfile import go_template

    fields = modelfile_fields(path)
    stops = fields["stops"]
    missing = [name for name in dict.fromkeys([turn_token, *names]) if name and name not in stops]
    checks = [judged("Modelfile: stop tokens", turn_token not in stops, f"stops {stops}; the template ends a turn with {turn_token}"
                     + (f"; generation config stops not in it: {missing}" if missing else ""),
                     f'PARAMETER stop "{turn_token}" (publish writes it): Ollama would run on past the answer')]
    template = fields["template"]
    ours = go_template(CHAT_FORMATS[fmt]) if fmt else None
    if template is None:
        checks.append(fail("Modelfile: template", "no TEMPLATE: Ollama runs the model as a plain completion model",
                           "a TEMPLATE written from the chat format (distill publish --gguf writes one)"))
    elif opening not in template:
        checks.append(fail("Modelfile: template", f"does not open the answer as the Jinja template does ({opening!r})",
                           "the Modelfile's TEMPLATE must end its prompt as the tokenizer's chat template does"))
    elif fmt and template == ours and jinja == INFERENCE_TEMPLATES[fmt]:
        checks.append(ok("Modelfile: template", f"written from the same {fmt} format as the Jinja template, opening {opening!r}"))
    else:
        checks.append(warn("Modelfile: template", f"opens the answer with {opening!r} as the Jinja template does; the rest is not "
                           f"distill's {fmt or 'own'} template and was not compared", "compare the two by hand, or republish"))
    source = fields["from"]
    exists = bool(source) and (model_dir / source.strip()).exists()
    checks.append(judged("Modelfile: model file", not exists, f"FROM {source}" + ("" if exists else " (not found)"),
                         "FROM the GGUF file beside it (./NAME.gguf)"))
    return checks
