# The two commands: `make demo` (embedded stack + sample batch), `make test` (checks, then the suite).
.PHONY: setup demo up status down check test lock gpu-bundle clean-data

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

# style, types, layering, declared dependencies (pyproject.toml: [tool.ruff], [tool.mypy],
# [tool.importlinter], [tool.deptry]) and the Dockerfiles (hadolint, .hadolint.yaml);
# `make test` runs them first
check: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports --no-cache
	.venv/bin/deptry .
	.venv/bin/hadolint deploy/docker/*.Dockerfile

test: check
	.venv/bin/python -m pytest

# the hashed locks from pyproject.toml (needs the package index): the runtime set the images
# install, and the development set `make setup` installs. Today's pins are kept unless
# pyproject's ranges exclude them: delete a package's lines to move it to its newest release.
LOCK = .venv/bin/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --annotation-style line -c requirements.lock \
	--custom-compile-command "make lock"
lock: setup
	$(LOCK) -o requirements.lock
	$(LOCK) --extra test --extra check --extra bench -o requirements-dev.lock

# the folder a lent GPU machine's check carries (benchmarks/README.md, "GPU ready check")
gpu-bundle: setup
	.venv/bin/python -m benchmarks.gpu_bundle

clean-data:
	rm -rf .data
