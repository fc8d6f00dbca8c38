# sgi2v-lite: `make demo` runs the main job on the toy world, `make test` runs the tests.
# Both create the virtual environment first when it is missing or out of date.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint format test-fast test-browser benchmark toy-model evaluate clean

setup: $(STAMP)

# torch first: on a machine without CUDA, torch==2.13.0 is the local CPU wheel; any other spec
# would pull gigabytes of CUDA packages. With CUDA, pip picks torch as usual.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		echo "CUDA found: torch comes from the package index"; \
	else \
		$(PY) -m pip install -q torch==2.13.0; \
	fi
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(PY) -m sgi2v_lite generate --model toy --image data/examples/shapes.png \
		--tracks data/examples/shapes.json --out out/demo.mp4 --overlay --strip out/demo.png

test: setup lint
	$(PY) -m pytest -q -m "not browser" --durations=12

# The code's format and lint rules ([tool.ruff] in pyproject.toml); `make format` applies them.
lint: setup
	$(PY) -m ruff format --check --quiet .
	$(PY) -m ruff check --quiet .

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not browser"

# The drawing widget in JupyterLab + Chromium (Playwright; needs /usr/bin/chromium, fails without it).
test-browser: setup
	SGI2V_REQUIRE_BROWSER=1 $(PY) -m pytest -q -m browser tests/browser

benchmark: setup
	$(PY) benchmarks/guided_vs_unguided.py

# Retrain the toy-world pipeline from scratch (seeded) into data/toy-svd: the VAE, its decoder alone
# on whole clips (stage 1b), then the UNet and image encoder; about 100 minutes on 2 cores. Replaces the
# weights and training_log.jsonl, then card.py writes TRAINING.md and training_loss.png from them.
# data/toy-svd/README.md, the measured findings, is written by hand: nothing here touches it.
toy-model: setup
	$(PY) -m sgi2v_lite.toy.card --check data/toy-svd
	$(PY) -m sgi2v_lite.toy.train --out data/toy-svd
	$(PY) -m sgi2v_lite.toy.card data/toy-svd

# SG-I2V on held-out toy scenes: ObjMC, object integrity, quality, ablations (a markdown table).
evaluate: setup
	$(PY) -m sgi2v_lite evaluate --model toy --scenes 32

clean:
	rm -rf out .pytest_cache
