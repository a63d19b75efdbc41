# The two commands: `make demo` (embedded stack + sample batch), `make test` (checks, then the suite).
.PHONY: setup demo up status down check test gpu-bundle clean-data

export PYANNOTE_METRICS_ENABLED = 0
export HF_HUB_DISABLE_TELEMETRY = 1

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/python -m devstack.demo

# the embedded stack in the background, serving MEDIA (default samples/audio) over HTTP
up: setup
	.venv/bin/python -m devstack up $(if $(MEDIA),--media $(MEDIA))

status:
	.venv/bin/python -m devstack status

down:
	.venv/bin/python -m devstack down

# style, types, layering and declared dependencies (pyproject.toml: [tool.ruff], [tool.mypy],
# [tool.importlinter], [tool.deptry]);
# `make test` runs them first
check: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports --no-cache
	.venv/bin/deptry .

test: check
	.venv/bin/python -m pytest

# the folder a lent GPU machine's check carries (benchmarks/README.md, "GPU ready check")
gpu-bundle: setup
	.venv/bin/python -m benchmarks.gpu_bundle

clean-data:
	rm -rf .data
