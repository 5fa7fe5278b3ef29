# anchor-deploy: the two promises of the README.
#   make run   install into .venv, start the platform, deploy the example site, print its URLs
#   make test  install every test need (pip and apt), then lint, type-check and run the whole suite
.PHONY: run test test-fast lint bench venv

run:
	./scripts/run

test:
	./scripts/test

test-fast: venv
	.venv/bin/python -m pytest -m "not e2e" -q

lint: venv
	.venv/bin/ruff check src tests bench && .venv/bin/ruff format --check src && .venv/bin/mypy

bench: venv
	.venv/bin/python bench/bench_core.py

venv:
	./scripts/venv
