"""Template checks, on real samples rendered exactly as training and inference render them.

- The loss mask (train mode): `students.dataset.tokenize`, the call training makes, must label
  every sample, only its assistant turns, and each turn's closing token, which must also be an
  id generation stops at.
- The answer's opening: the inference template with the generation prompt must give exactly
  the tokens training put before the reasoning, `<think>\\n` included. Compared as text first
  (a template that drops or adds `<think>` differs there), then token for token; a difference
  in the prompt's last token only is a tokenizer merge across the boundary (Qwen2.5's `>\\n\\n`
  when the reasoning starts with a newline), which is a warning.
- Earlier turns: training keeps an earlier assistant turn as the data has it; R1's inference
  template drops its reasoning. Multi-turn samples that differ there are a warning.
"""

from __future__ import annotations

from collections.abc import Sequence

from students.doctor import Check, judged, ok, warn
from students.inference import THINK_OPEN

Messages = list[dict[str, str]]


def _render(tokenizer, template: str, messages: Messages, generation: bool = False, ids: bool = False):
    if ids:
        return list(tokenizer.apply_chat_template(messages, chat_template=template, tokenize=True, return_dict=True,
                                                  add_generation_prompt=generation)["input_ids"])
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False, add_generation_prompt=generation)


def generation_prompt(tokenizer, template: str) -> str:
    """What the template appends for the model's answer (`<|im_start|>assistant\\n<think>\\n`)."""
    user = [{"role": "user", "content": "Hi"}]
    with_prompt, without = _render(tokenizer, template, user, True), _render(tokenizer, template, user)
    return with_prompt[len(without):] if with_prompt.startswith(without) else with_prompt


# ---------------------------------------------------------------------------- loss mask


def mask_checks(tokenizer, eos_token: str, rendered: Sequence[tuple[Messages, list[int], list[int]]], stops: list[int]) -> list[Check]:
    """`rendered`: (messages, input_ids, labels) as `students.dataset.tokenize` returns them."""
    eos = tokenizer.convert_tokens_to_ids(eos_token)
    empty, leaks, other, turns, closed = 0, 0, 0, 0, 0
    first: dict[str, str] = {}
    for messages, ids, labels in rendered:
        kept = [token for token, label in zip(ids, labels, strict=True) if label != -100]
        assistant = [m["content"] for m in messages if m["role"] == "assistant"]
        turns += len(assistant)
        closed += sum(1 for label in labels if label == eos)
        if not kept:
            empty += 1
            continue
        text = tokenizer.decode(kept, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if text == "".join(content + eos_token for content in assistant):
            continue
        prompt = [m["content"] for m in messages if m["role"] != "assistant" and m["content"].strip()]
        if any(part in text for part in prompt):
            leaks += 1
            first.setdefault("leak", text[:60])
        else:
            other += 1
            first.setdefault("other", text[:60])
    n = len(rendered)
    checks = [judged("loss mask: non-empty", empty > 0,
                     f"{n - empty} of {n} samples have label tokens" + (" (the template marks no assistant span)" if empty == n else ""),
                     "a training template whose assistant turns sit inside {% generation %}...{% endgeneration %} "
                     "(students/templates.py); without them every label is masked")]
    if leaks:
        checks.append(Check("loss mask: assistant only", "fail", f"{leaks} of {n} samples have prompt text in their labels, "
                            f"first {first['leak']!r}", "only the assistant turns may sit inside {% generation %}"))
    elif other:
        checks.append(warn("loss mask: assistant only", f"{other} of {n} samples label more or less than their assistant turns "
                           f"and {eos_token}, first {first['other']!r}", "mark exactly the assistant content and its closing token"))
    else:
        checks.append(ok("loss mask: assistant only", f"{n - empty} of {n} samples label exactly their assistant turns and {eos_token}"))
    stops_it = eos in stops
    checks.append(judged("loss mask: end-of-turn token", closed < turns or not stops_it,
                         f"{min(closed, turns)} of {turns} assistant turns end with a labeled {eos_token} (id {eos}); "
                         f"generation stops at {stops}" + ("" if stops_it else f", not at {eos}"),
                         "the closing token must be inside {% generation %} and among the generation config's eos ids; "
                         "without it the model never learns to stop"))
    return checks


# ---------------------------------------------------------------------------- prompt vs training prefix


def compare_prefix(tokenizer, training: str, inference: str, messages: Messages, turn: int) -> tuple[str, str]:
    """How the inference prompt for assistant turn `turn` compares with training's tokens before its reasoning:
    ("same" | "boundary" | "differs", detail)."""
    content = messages[turn]["content"]
    trained = _render(tokenizer, training, messages[: turn + 1])
    start = trained.rfind(content)
    if start < 0:
        return "differs", "the training template does not render the assistant content verbatim"
    expected = trained[: start + (len(THINK_OPEN) if content.startswith(THINK_OPEN) else 0)]
    prompt = _render(tokenizer, inference, messages[:turn], generation=True)
    if prompt != expected:
        at = next((i for i, (a, b) in enumerate(zip(prompt, expected, strict=False)) if a != b), min(len(prompt), len(expected)))
        return "differs", f"inference prompt …{prompt[max(0, at - 30):at + 12]!r} vs training …{expected[max(0, at - 30):at + 12]!r}"
    prompt_ids, trained_ids = _render(tokenizer, inference, messages[:turn], True, True), _render(tokenizer, training, messages[: turn + 1], ids=True)
    if trained_ids[: len(prompt_ids)] == prompt_ids:
        return "same", ""
    at = next(i for i, (a, b) in enumerate(zip(prompt_ids, trained_ids, strict=False)) if a != b)
    pieces = tokenizer.convert_ids_to_tokens([prompt_ids[at], trained_ids[at]])
    detail = f"token {at}: the prompt has {pieces[0]!r}, training {pieces[1]!r}"
    return ("boundary" if at == len(prompt_ids) - 1 else "differs"), detail


def _tally(results: list[tuple[str, str]]) -> tuple[dict[str, int], dict[str, str]]:
    counts = {"same": 0, "boundary": 0, "differs": 0}
    first: dict[str, str] = {}
    for kind, detail in results:
        counts[kind] += 1
        first.setdefault(kind, detail)
    return counts, first


def prefix_checks(tokenizer, training: str, inference: str, conversations: Sequence[Messages], multi_turn_status: str = "warn") -> list[Check]:
    """The answer opening (each sample's first assistant turn) and earlier turns (its later ones)."""
    opening = generation_prompt(tokenizer, inference)
    firsts, laters = [], []
    for messages in conversations:
        turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        firsts.append(compare_prefix(tokenizer, training, inference, messages, turns[0]))
        laters += [compare_prefix(tokenizer, training, inference, messages, turn) for turn in turns[1:]]
    counts, first = _tally(firsts)
    n = len(firsts)
    name = "template: prompt = training prefix"
    if counts["differs"]:
        check = Check(name, "fail", f"{counts['differs']} of {n} prompts differ from the training prefix; first: {first['differs']}",
                      f"the inference template's generation prompt ({opening!r}) must end where training's assistant turn "
                      "starts its reasoning: open the answer with '<think>\\n' in both (students/inference.py)")
    elif counts["boundary"]:
        check = warn(name, f"{counts['same']} of {n} match token for token ending {opening!r}; {counts['boundary']} differ in the "
                     f"prompt's last token only (first: {first['boundary']}): their reasoning starts with text that merges with it",
                     "mostly harmless; start the reasoning after '<think>\\n' with text, not whitespace")
    else:
        check = ok(name, f"{n} of {n} prompts match the training tokens token for token, ending {opening!r}")
    checks = [check]
    counts, first = _tally(laters)
    keeps = keeps_earlier_reasoning(tokenizer, inference)
    policy = "the inference template " + ("keeps earlier turns' reasoning" if keeps else "drops earlier turns' reasoning (R1)")
    if not laters:
        checks.append(ok("template: earlier turns", f"no multi-turn samples; {policy}"))
    else:
        bad = counts["differs"]
        checks.append(judged("template: earlier turns", bad > 0,
                             f"{len(laters) - bad} of {len(laters)} later turns see at inference what they saw in training; {policy}"
                             + (f"; first: {first['differs']}" if bad else ""),
                             "remove the reasoning of earlier assistant turns from the data, as the inference template does",
                             status=multi_turn_status))
    return checks


def keeps_earlier_reasoning(tokenizer, inference: str) -> bool:
    marker = "Zq9reasoning"
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": f"{THINK_OPEN}{marker}\n</think>\n\nHello."},
                {"role": "user", "content": "Again"}]
    return marker in _render(tokenizer, inference, messages, generation=True)
