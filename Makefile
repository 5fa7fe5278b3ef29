# anchor-deploy: the two promises of the README.
#   make run   install into .venv, start the platform, deploy the example site, print its URLs
#   make test  install every test need (pip and apt), then lint, type-check and run the whole suite
.PHONY: run test test-fast lint screenshots bench bench-core bench-apps bench-domains bench-sandbox bench-integrity bench-backup bench-aws bench-git bench-dashboard venv

run:
	./scripts/run

test:
	./scripts/test

test-fast: venv
	.venv/bin/python -m pytest -m "not e2e" -q

lint: venv
	.venv/bin/ruff check src tests bench && .venv/bin/ruff format --check src && .venv/bin/mypy

# The dashboard's browser tests (Debian's chromium, installed by `make test`), which also write their
# screenshots into docs/screenshots/.
screenshots: venv
	ANCHOR_SCREENSHOTS=1 .venv/bin/python -m pytest -q -p no:cacheprovider tests/e2e/test_dashboard.py \
		tests/e2e/test_dashboard_usable.py tests/e2e/test_dashboard_domains.py

# All the benchmarks, one after the other (each takes minutes; `make bench BENCH_ARGS=--quick` for smoke
# runs). The app benchmarks build from the wheelhouse, the domain one drives the DNS servers and pebble
# and the dashboard one drives Debian's chromium, all of which `make test` installs.
BENCH_ARGS ?=
bench: venv
	.venv/bin/python bench/bench_core.py $(BENCH_ARGS)
	.venv/bin/python bench/bench_apps.py $(BENCH_ARGS)
	.venv/bin/python bench/bench_domains.py $(BENCH_ARGS)
	.venv/bin/python bench/bench_sandbox.py $(BENCH_ARGS)
	.venv/bin/python bench/bench_integrity.py $(BENCH_ARGS)
	.venv/bin/python bench/bench_backup.py $(BENCH_ARGS)
	.venv/bin/python bench/bench_aws.py $(BENCH_ARGS)
	.venv/bin/python bench/bench_git.py $(BENCH_ARGS)
	.venv/bin/python bench/bench_dashboard.py $(BENCH_ARGS)

bench-core bench-apps bench-domains bench-sandbox bench-integrity bench-backup bench-aws bench-git bench-dashboard: bench-%: venv
	.venv/bin/python bench/bench_$*.py $(BENCH_ARGS)

venv:
	./scripts/venv
