# The only commands a person or CI needs. Each installs what it uses into .venv first.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test check clean install schema client bench soak

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## run: serve the catalog (embedded PostgreSQL unless DATABASE_URL is set)
run: $(STAMP)
	$(BIN)/python -m scripts.run

## test: the whole suite against a real PostgreSQL
test: $(STAMP)
	PYTHONASYNCIODEBUG=1 $(BIN)/python -m pytest

## soak: the long proofs: 20,000 WebSocket connect/disconnect cycles, 5,000 stalled clients
soak: $(STAMP)
	SOAK_CYCLES=20000 SLOW_CLIENTS=5000 $(BIN)/python -m pytest tests/test_soak.py \
		tests/test_server.py -k "soak or cycles or stalled" -v

## schema: write docs/openapi.json and docs/asyncapi.json from the code (offline)
schema: $(STAMP)
	$(BIN)/python -m scripts.export_schema

## client: regenerate the typed Python client in clients/python/ from docs/openapi.json
client: schema
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/openapi-python-client generate --path docs/openapi.json \
		--config clients/openapi-python-client.yaml --meta none \
		--output-path clients/python/catalog_client --overwrite

## bench: measure HTTP and WebSocket against the references; writes docs/BENCHMARKS.md
bench: $(STAMP)
	$(BIN)/python -m bench

## check: format, lint and type-check src, scripts, tests and bench
check: $(STAMP)
	$(BIN)/ruff format --check src tests scripts bench
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .data .pytest_cache
