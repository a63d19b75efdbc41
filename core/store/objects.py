"""Object storage through boto3 (R2, S3, or the embedded S3-compatible server).

Keys are spelled in ``core/store/layout.py`` (``ObjectStore.keys`` hands out a video's);
what a failed call means, and how an outage is ridden out, in ``core/store/errors.py``.
Every write is a whole-object PUT, so a retried activity overwrites rather than
duplicates, and readers never see half an object.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from core.contracts.errors import StorageUnavailable, StoreUnsafe
from core.contracts.video import SCHEMA_VERSION
from core.service.backoff import jittered
from core.service.settings import Settings
from core.store.errors import as_storage_error, rides_out
from core.store.layout import VideoKeys, key_prefix, probe_key

CONFLICT_RETRIES = 5


class ObjectStore:
    """A bucket plus prefix. Errors that mean 'try again later' become StorageUnavailable,
    after riding the outage out for ``ride_out_s`` (0: at once, for the operator's CLI)."""

    def __init__(self, settings: Settings, ride_out_s: float = 0.0):
        import boto3  # here, not at import: the workflow worker names this class and never uses it
        from botocore.config import Config

        self.ride_out_s = ride_out_s
        self.bucket = settings.s3_bucket
        self.prefix = key_prefix(settings.s3_prefix)
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
        return self.create_bytes(
            key, json.dumps(value, indent=1, sort_keys=False).encode(), "application/json"
        )

    def create_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> bool:
        """Write ``key`` only if it does not exist yet (If-None-Match: *, honoured by S3,
        R2 and the embedded server). False: it already existed and was left as it was."""
        return self._create(
            "put_object", Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, IfNoneMatch="*"
        )

    def create_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> bool:
        """``create_bytes`` for a file too large to hold in memory (streamed from disk)."""
        return self._create(
            "put_object",
            Bucket=self.bucket,
            Key=key,
            BodyPath=path,
            ContentType=content_type,
            IfNoneMatch="*",
        )

    def copy_new(self, source_key: str, key: str, source_etag: str | None = None) -> bool:
        """Server-side copy to ``key`` only if ``key`` does not exist yet, and (given
        ``source_etag``) only if the source is still the object that was checked."""
        extra = {"CopySourceIfMatch": source_etag} if source_etag else {}
        return self._create(
            "copy_object",
            Bucket=self.bucket,
            Key=key,
            IfNoneMatch="*",
            CopySource={"Bucket": self.bucket, "Key": source_key},
            **extra,
        )

    @rides_out
    def _create(self, operation: str, **kwargs: Any) -> bool:
        """A conditional create. 412 means the key exists; 409 (a concurrent conditional
        write in flight, S3's ConditionalRequestConflict) means "ask again", so it is
        retried here and becomes StorageUnavailable (retryable) if it persists."""
        from botocore.exceptions import ClientError

        body_path: Path | None = kwargs.pop("BodyPath", None)
        for attempt in range(CONFLICT_RETRIES):
            try:
                if body_path is None:
                    getattr(self._client, operation)(**kwargs)
                else:  # each try reads the file from its start
                    with body_path.open("rb") as body:
                        getattr(self._client, operation)(Body=body, **kwargs)
                return True
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code in {"PreconditionFailed", "412"}:
                    return False
                if code not in {"ConditionalRequestConflict", "409"}:
                    raise as_storage_error(exc, operation) from exc
                time.sleep(jittered(0.2 * 2**attempt))
            except Exception as exc:
                raise as_storage_error(exc, operation) from exc
        raise StorageUnavailable(
            f"storage {operation} {kwargs.get('Key')}: conflicting writes did not settle"
        )

    def check_conditional_writes(self) -> None:
        """Refuse a store that ignores a condition the commit relies on: If-None-Match on
        PutObject and on CopyObject (the commit copies files to their committed keys),
        and CopySourceIfMatch (it copies only the bytes it checked). On such a store a
        committed output could be overwritten, or mixed files committed."""
        token = uuid.uuid4().hex
        source, taken, fresh = (probe_key(self.prefix, f"{token}-{name}") for name in ("src", "taken", "new"))
        try:
            checks = {
                "PutObject If-None-Match": self.create_bytes(source, b"1")
                and not self.create_bytes(source, b"2"),
            }
            _, etag = self.sha256(source)
            self.create_bytes(taken, b"committed")
            checks["CopyObject If-None-Match"] = not self.copy_new(source, taken)
            checks["CopyObject CopySourceIfMatch"] = not self.copy_new(
                source, fresh, source_etag='"' + "0" * 32 + '"'
            )
            checks["CopyObject when both hold"] = self.copy_new(source, fresh, source_etag=etag)
            checks["nothing overwritten"] = (
                self.get_bytes(source) == b"1" and self.get_bytes(taken) == b"committed"
            )
        finally:
            for key in (source, taken, fresh):
                self.delete(key)
        ignored = [name for name, held in checks.items() if not held]
        if ignored:
            raise StoreUnsafe(
                f"storage {self.bucket} ignores conditional writes ({', '.join(ignored)}): "
                "committed outputs could be overwritten; use S3, R2 or MinIO >= 2024-11"
            )

    @rides_out
    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> None:
        try:
            self._client.upload_file(str(path), self.bucket, key, ExtraArgs={"ContentType": content_type})
        except Exception as exc:  # boto3's transfer manager wraps ClientError
            raise as_storage_error(exc, "upload_file") from exc

    def delete(self, key: str) -> None:
        self._call("delete_object", Bucket=self.bucket, Key=key)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``, one DeleteObject each (the embedded
        server has no batch delete; intermediates are a handful of objects)."""
        keys = self.list_keys(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    # --- reads --------------------------------------------------------------------
    def get_bytes(self, key: str) -> bytes:
        return cast(bytes, self._call("get_object", Bucket=self.bucket, Key=key)["Body"].read())

    @rides_out
    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Bytes [start, start+length) of an object; fewer at its end, b"" past it."""
        from botocore.exceptions import ClientError

        try:
            response = self._client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes={start}-{start + length - 1}"
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""
            raise as_storage_error(exc, "get_object") from exc
        except Exception as exc:
            raise as_storage_error(exc, "get_object") from exc
        return cast(bytes, response["Body"].read())

    @rides_out
    def sha256(self, key: str) -> tuple[str, str]:
        """sha256 of an object's content, streamed, and the ETag of what was hashed."""
        digest = hashlib.sha256()
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
            for block in response["Body"].iter_chunks(1 << 20):
                digest.update(block)
        except Exception as exc:
            raise as_storage_error(exc, "get_object") from exc
        return digest.hexdigest(), response["ETag"]

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def get_json_or_none(self, key: str) -> Any | None:
        try:
            return self.get_json(key)
        except KeyError:
            return None

    @rides_out
    def download_file(self, key: str, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._client.download_file(self.bucket, key, str(path))
        except Exception as exc:
            raise as_storage_error(exc, "download_file") from exc
        return path

    def exists(self, key: str) -> bool:
        try:
            self._call("head_object", Bucket=self.bucket, Key=key)
            return True
        except KeyError:
            return False

    def list_keys(self, prefix: str) -> list[str]:
        return [key for key, _modified in self.list_objects(prefix)]

    def list_objects(self, prefix: str, start_after: str | None = None) -> Iterator[tuple[str, datetime]]:
        """Every key under ``prefix`` (after ``start_after``, in key order) with its
        last-modified time, a page at a time. Not boto3's paginator: its pages come from
        a generator that ends for good at its first error, where here each page's call
        rides out an outage on its own and the listing carries on from its token."""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if start_after:
                kwargs["StartAfter"] = start_after
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call("list_objects_v2", **kwargs)
            yield from ((obj["Key"], obj["LastModified"]) for obj in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    @rides_out
    def _call(self, operation: str, **kwargs: Any) -> Any:
        """Run one S3 call: a missing key/bucket is KeyError, an outage StorageUnavailable."""
        try:
            return getattr(self._client, operation)(**kwargs)
        except Exception as exc:
            raise as_storage_error(exc, operation) from exc
