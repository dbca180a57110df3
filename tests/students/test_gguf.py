"""`distill publish --gguf`: GGUF files written by llama.cpp's own converter and quantizer, then
proven by running them with llama.cpp against transformers, for tiny students trained a few real
steps on the real Qwen2.5 and Llama-3.1 tokenizers (llama.cpp converts released tokenizers only)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from distill.core.publishing import MARK
from students.inference import CHAT_FORMATS, template_format
from students.modelfile import PROMPT_ROOM
from students.publish import PublishConfig, run

from .conftest import tiny_config, write_kept

pytest.importorskip("llama_cpp", reason="needs the gguf extra (llama-cpp-python)")

ROOT = Path(__file__).resolve().parents[2]
TYPES = ["f32", "f16", "q8_0", "q4_k_m"]
STUDENT = {"qwen": "qwen-1.5b", "llama": "llama-8b"}
TEXTS = ["What is 12 plus 30?", "Let me think about this problem.", "首先，我们计算", "<think>\nThe answer is \\boxed{42}."]
CONVERSATION = [
    {"role": "system", "content": "You are a careful mathematician."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "<think>\nsecret reasoning: 2 and 2 make 4\n</think>\n\nThe answer is \\boxed{4}."},
    {"role": "user", "content": "And 3+3?"},
]
# f16 rounds every weight to 11 significant bits: the logits move by far less than this share of their
# scale (measured: 0.05%); token equality is not asserted for f16, near-ties on random weights flip it.
F16_TOLERANCE = 0.01


@pytest.fixture(scope="module", params=["qwen", "llama"])
def published(request, tmp_path_factory) -> Path:
    """A tiny student with the real tokenizer of its family, trained a few steps, published with every GGUF type."""
    from students.train import run as train

    family = request.param
    root = tmp_path_factory.mktemp(f"gguf-{family}")
    base = request.getfixturevalue(f"released_{family}")
    kept = write_kept(root / "kept.jsonl", copies=2)
    config = tiny_config(base, kept, root / "run", student=STUDENT[family], max_steps=8, learning_rate=2e-2)
    train(config)
    out = root / "model"
    run(PublishConfig(run_dir=root / "run", output=out, merge=True, gguf=TYPES, model_name=f"me/r1-tiny-{family}"))
    return out


@pytest.fixture(scope="module")
def reference(published):
    """The published folder as transformers loads it: tokenizer, float32 model, the prompts' token ids."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(published)
    model = AutoModelForCausalLM.from_pretrained(published, dtype=torch.float32).eval()
    return tokenizer, model, _prompts(tokenizer)


@contextlib.contextmanager
def _llama(path: Path):
    from llama_cpp import Llama

    llm = Llama(str(path), n_ctx=512, logits_all=True, n_threads=2, seed=0, verbose=False)
    try:
        yield llm
    finally:
        llm.close()


def _gguf(published: Path, kind: str) -> Path:
    (path,) = published.glob(f"r1-tiny-*-{kind.upper()}.gguf")
    return path


def _prompts(tokenizer) -> list[list[int]]:
    """Token ids of raw texts and of chat prompts as the student sees them."""
    chats = [tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True, return_dict=False)
             for text in TEXTS[:2]]
    return [tokenizer(text)["input_ids"] for text in TEXTS] + chats


def test_files_and_types(published):
    import llama_cpp

    names = sorted(p.name for p in published.iterdir())
    assert [n for n in names if n.endswith(".gguf")] == sorted(_gguf(published, k).name for k in TYPES)
    assert "Modelfile" in names and not any(n.startswith(".") and n != MARK or n.endswith(".part") for n in names)  # no temporaries
    sizes = {k: _gguf(published, k).stat().st_size for k in TYPES}
    assert sizes["f32"] > sizes["f16"] > sizes["q8_0"] >= sizes["q4_k_m"]
    for kind in TYPES:
        with _llama(_gguf(published, kind)) as llm:
            ftype = "LLAMA_FTYPE_ALL_F32" if kind == "f32" else f"LLAMA_FTYPE_MOSTLY_{kind.upper()}"
            assert int(llm.metadata["general.file_type"]) == getattr(llama_cpp, ftype)
            # llama.cpp recognised the released tokenizer's pre-tokenizer (by the hash of its output).
            assert llm.metadata["tokenizer.ggml.pre"] in ("qwen2", "llama-bpe")


def test_f32_gguf_generates_what_transformers_generates(published, reference):
    """Same tokens in (llama.cpp's tokenizer) and the same greedy continuation out, token for token."""
    tokenizer, model, prompts = reference
    with _llama(_gguf(published, "f32")) as llm:
        for ids in prompts:
            text = tokenizer.decode(ids)
            assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids, text
            with torch.no_grad():
                expected = model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                          eos_token_id=None)[0, len(ids):].tolist()
            got = []
            for token in llm.generate(ids, temp=0.0, top_k=1, reset=True):
                got.append(token)
                if len(got) == len(expected):
                    break
            assert got == expected, text


def test_f16_gguf_logits_within_tolerance(published, reference):
    tokenizer, model, prompts = reference
    with _llama(_gguf(published, "f16")) as llm:
        for ids in prompts:
            with torch.no_grad():
                expected = model(torch.tensor([ids])).logits[0].numpy()
            llm.reset()
            llm.eval(ids)
            got = np.array(llm.scores[: len(ids)])
            scale = np.abs(expected).max()
            assert scale > 1.0  # trained: the logits are not all near zero
            assert np.abs(got - expected).max() < F16_TOLERANCE * scale


def test_embedded_chat_template_renders_like_the_published_tokenizer(published):
    """llama.cpp's server renders the GGUF's template as transformers renders tokenizer_config's."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(published)
    expected = tokenizer.apply_chat_template(CONVERSATION, add_generation_prompt=True, tokenize=False)
    expected_ids = tokenizer.apply_chat_template(CONVERSATION, add_generation_prompt=True, tokenize=True, return_dict=False)
    with _llama(_gguf(published, "q8_0")) as llm:
        special = {name: llm.detokenize([token], special=True).decode() for name, token in (("bos", llm.token_bos()), ("eos", llm.token_eos()))}
        # As llama_cpp.Llama builds its handler from the GGUF (a token id of -1 means none).
        formatter = Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"], eos_token=special["eos"],
                                        bos_token=special["bos"] if llm.token_bos() != -1 else "")
        rendered = formatter(messages=CONVERSATION)
        assert rendered.prompt == expected
        assert llm.tokenize(rendered.prompt.encode(), add_bos=not rendered.added_special, special=True) == expected_ids
        # The stop token is the end of the student's turn, the R1 prefill opens the answer, old reasoning is gone.
        assert special["eos"] == tokenizer.eos_token and tokenizer.eos_token in ("<|im_end|>", "<|eot_id|>")
        assert expected.endswith("<think>\n") and "secret reasoning" not in expected and "You are a careful" in expected
        if tokenizer.bos_token:
            assert expected_ids.count(tokenizer.bos_token_id) == 1 and expected_ids[0] == tokenizer.bos_token_id
        # Padding is the training's pad token, never the stop token.
        pad = int(llm.metadata["tokenizer.ggml.padding_token_id"])
        assert pad == tokenizer.pad_token_id != tokenizer.eos_token_id


def test_modelfile_runs_the_quantized_file_with_the_r1_template(published):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(published)
    text = (published / "Modelfile").read_text()
    lines = text.splitlines()
    assert f"FROM ./{_gguf(published, 'q4_k_m').name}" in lines
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    fmt = CHAT_FORMATS[template_format(tokenizer)]
    # The answer opens as the Jinja template opens it, and only when the model is to answer.
    jinja = tokenizer.apply_chat_template([{"role": "user", "content": "x"}], add_generation_prompt=True, tokenize=False)
    assert jinja.endswith(fmt.generation_prompt()) and fmt.generation_prompt().endswith("<think>\n")
    assert f'{{{{ if and $last (ne .Role "assistant") }}}}{fmt.generation_prompt()}{{{{ end }}}}' in template
    assert "<think>\n{{ .Thinking }}\n</think>" in template and "range $i, $_ := .Messages" in template
    assert (tokenizer.bos_token or "<none>") not in template  # Ollama adds BOS itself
    assert f'PARAMETER stop "{tokenizer.eos_token}"' in lines
    assert "PARAMETER temperature 0.6" in lines and "PARAMETER top_p 0.95" in lines
    max_length = json.loads((published.parent / "run" / "train.json").read_text())["max_seq_length"]
    assert f"PARAMETER num_ctx {max_length + PROMPT_ROOM}" in lines
    assert any(line.startswith("# num_ctx:") for line in lines)


def test_card_says_how_to_run_it_locally(published):
    card = (published / "README.md").read_text()
    section = card.split("## Run it locally", 1)[1].split("\n## ", 1)[0]
    q4 = _gguf(published, "q4_k_m").name
    assert "ollama create r1-tiny-" in section and "-f Modelfile" in section
    assert f"llama-server -m {q4} --jinja" in section and f"--model {q4}" in section
    assert "vllm serve . --generation-config auto" in section and "sglang.launch_server --model-path ." in section


def test_gguf_refusals_are_one_line_errors_and_write_nothing(tmp_path, tiny_qwen):
    """A tokenizer trained on the spot is refused by llama.cpp's converter: exit 1 with its reason, nothing written."""
    from students.train import run as train

    cli = [sys.executable, "-m", "cli", "publish"]
    result = subprocess.run([*cli, str(tmp_path), "-o", str(tmp_path / "o"), "--gguf", "q4_k_x"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "unknown gguf type 'q4_k_x'" in result.stderr.lower() and not (tmp_path / "o").exists()

    config = tiny_config(tiny_qwen, write_kept(tmp_path / "kept.jsonl", copies=1), tmp_path / "run", max_steps=1)
    train(config)
    result = subprocess.run([*cli, str(tmp_path / "run"), "-o", str(tmp_path / "o"), "--gguf", "f16"], capture_output=True, text=True, cwd=ROOT)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and last.startswith("failed: ") and "pre-tokenizer was not recognized" in last, result.stderr
    assert "Traceback" not in result.stderr
    print(last)
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))
