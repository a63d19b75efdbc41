# The two commands: `make demo` (embedded stack + sample batch), `make test` (suite).
.PHONY: setup demo test clean-data

export PYANNOTE_METRICS_ENABLED = 0
export HF_HUB_DISABLE_TELEMETRY = 1

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/python -m devstack.demo

test: setup
	.venv/bin/python -m pytest

clean-data:
	rm -rf .data
