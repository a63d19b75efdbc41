"""Object storage through boto3 (R2, S3, or the embedded S3-compatible server).

Keys follow the layout in DESIGN.md; ``keys`` below is the only place that spells
them. Every write is a whole-object PUT, so a retried activity overwrites rather than
duplicates, and readers never see half an object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from core.errors import StorageUnavailable
from core.models import SCHEMA_VERSION
from core.settings import Settings


@dataclass(frozen=True)
class VideoKeys:
    """The storage layout of one video, for one output schema.

    Each schema version commits into its own folder, ``{video_id}/v{N}/`` (schema 1,
    from before versioned folders, sits at ``{video_id}/``): re-processing a video after
    a schema bump writes a fresh, consistent set of files and never overwrites or mixes
    with what an older schema committed, which stays readable where it was."""

    prefix: str
    video_id: str
    schema_version: int = SCHEMA_VERSION

    def _k(self, name: str) -> str:
        folder = "" if self.schema_version == 1 else f"v{self.schema_version}/"
        return f"{self.prefix}{self.video_id}/{folder}{name}"

    def _w(self, name: str) -> str:
        return f"{self.prefix}_work/{self.video_id}/{name}"

    @property
    def root(self) -> str:
        return self._k("")

    @property
    def original(self) -> str:
        return self._k("original.wav")

    @property
    def metadata(self) -> str:
        return self._k("metadata.json")

    @property
    def embeddings(self) -> str:
        return self._k("embeddings.npy")

    @property
    def rttm(self) -> str:
        return self._k("diarization.rttm")

    @property
    def stats(self) -> str:
        return self._k("stats.json")

    @property
    def work_root(self) -> str:
        return self._w("")

    @property
    def analysis(self) -> str:
        return self._w("analysis_16k.wav")

    @property
    def audio_ref(self) -> str:
        return self._w("audio_ref.json")

    @property
    def diarization(self) -> str:
        return self._w("diarization.json")

    @property
    def music(self) -> str:
        return self._w("music.json")

    @property
    def segment_embeddings(self) -> str:
        return self._w("segment_embeddings.npy")

    @property
    def centroids(self) -> str:
        return self._w("centroids.json")


def _normalise_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


class ObjectStore:
    """A bucket plus prefix. Errors that mean 'try again later' become StorageUnavailable."""

    def __init__(self, settings: Settings):
        self.bucket = settings.s3_bucket
        self.prefix = _normalise_prefix(settings.s3_prefix)
        self._client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id.get_secret_value(),
            aws_secret_access_key=settings.s3_secret_access_key.get_secret_value(),
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
                s3={"addressing_style": "path"},
            ),
        )

    def keys(self, video_id: str, schema_version: int = SCHEMA_VERSION) -> VideoKeys:
        return VideoKeys(self.prefix, video_id, schema_version)

    def ensure_bucket(self) -> None:
        try:
            self._call("head_bucket", Bucket=self.bucket)
        except KeyError:
            self._call("create_bucket", Bucket=self.bucket)

    # --- writes -------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._call("put_object", Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def put_json(self, key: str, value: Any) -> None:
        body = json.dumps(value, indent=1, sort_keys=False).encode()
        self.put_bytes(key, body, "application/json")

    def create_json(self, key: str, value: Any) -> bool:
        """Write ``key`` only if it does not exist yet (If-None-Match: *, honoured by S3,
        R2 and the embedded server). False: it already existed and was left as it was."""
        body = json.dumps(value, indent=1, sort_keys=False).encode()
        try:
            self._client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType="application/json", IfNoneMatch="*"
            )
            return True
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                return False
            raise _as_storage_error(exc, "put_object") from exc
        except Exception as exc:
            raise _as_storage_error(exc, "put_object") from exc

    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> None:
        try:
            self._client.upload_file(
                str(path), self.bucket, key, ExtraArgs={"ContentType": content_type}
            )
        except Exception as exc:  # boto3's transfer manager wraps ClientError
            raise _as_storage_error(exc, "upload_file") from exc

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``, one DeleteObject each (the embedded
        server has no batch delete; intermediates are a handful of objects)."""
        keys = self.list_keys(prefix)
        for key in keys:
            self._call("delete_object", Bucket=self.bucket, Key=key)
        return len(keys)

    # --- reads --------------------------------------------------------------------
    def get_bytes(self, key: str) -> bytes:
        return self._call("get_object", Bucket=self.bucket, Key=key)["Body"].read()

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Bytes [start, start+length) of an object; fewer at its end, b"" past it."""
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{start + length - 1}")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""
            raise _as_storage_error(exc, "get_object") from exc
        except Exception as exc:
            raise _as_storage_error(exc, "get_object") from exc
        return response["Body"].read()

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def get_json_or_none(self, key: str) -> Any | None:
        try:
            return self.get_json(key)
        except KeyError:
            return None

    def download_file(self, key: str, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._client.download_file(self.bucket, key, str(path))
        except Exception as exc:
            raise _as_storage_error(exc, "download_file") from exc
        return path

    def exists(self, key: str) -> bool:
        try:
            self._call("head_object", Bucket=self.bucket, Key=key)
            return True
        except KeyError:
            return False

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call("list_objects_v2", **kwargs)
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return keys
            token = page["NextContinuationToken"]

    def _call(self, operation: str, **kwargs: Any) -> Any:
        """Run one S3 call: a missing key/bucket is KeyError, an outage StorageUnavailable."""
        try:
            return getattr(self._client, operation)(**kwargs)
        except Exception as exc:
            raise _as_storage_error(exc, operation) from exc


def _as_storage_error(exc: Exception, operation: str) -> Exception:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}:
            return KeyError(f"{operation}: {code}")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status and status < 500 and code not in {"SlowDown", "RequestTimeout", "429"}:
            return exc  # a client error (bad credentials, bad request): not an outage
    return StorageUnavailable(f"storage {operation} failed: {type(exc).__name__}: {exc}")
