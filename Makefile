# Two commands take a fresh clone to a running app: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench package package-check clean screenshots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	@if [ "$$(uname)" = Linux ] && [ -z "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
		echo "No display here: showing and training the default preset headless instead."; \
		$(BIN)/workbench summary resources/presets/digits-mlp.toml && \
		$(BIN)/workbench train resources/presets/digits-mlp.toml --out runs/digits-mlp; \
	else \
		$(BIN)/workbench gui; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check workbench tests tools
	$(BIN)/ruff format --check workbench tests tools
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m "not slow and not bench" -p no:cacheprovider

bench: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -s -m bench tests/benchmarks -p no:cacheprovider

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache

screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python tools/screenshots.py
