# The two commands: `make demo` (set up + run the demo city), `make test` (set up + run the tests).
.PHONY: demo test setup setup-test lint bench

demo: setup
	.venv/bin/python app.py

test: setup-test lint
	.venv/bin/python -m pytest -q

setup:
	bash scripts/setup.sh

setup-test:
	bash scripts/setup.sh test

lint:
	.venv/bin/ruff check .
	.venv/bin/mypy app.py geo config layers data store render ops services api callbacks
	.venv/bin/lint-imports  # the layering contract in pyproject.toml: imports go one way

bench: setup-test
	.venv/bin/python bench/first_map.py
