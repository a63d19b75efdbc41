"""Build step of the GPU image: bake the pyannote pipeline in, only when an HF token is
given as a BuildKit secret.

    RUN --mount=type=secret,id=hf_token,required=false \\
        python /opt/podcast/fetch_model.py --secret-file /run/secrets/hf_token ...

The token is read from the secret file BuildKit mounts for this one RUN: it is never an
ARG, an ENV or a file in a layer, never printed, and the Hugging Face cache used for
the download is deleted before the step ends. Without a token the step succeeds and
bakes nothing (``--require``, or the build arg ``REQUIRE_MODEL=1``, makes that an
error, for release builds); the worker then
needs ``PIPELINE_PYANNOTE_MODEL=pyannote/speaker-diarization-community-1`` and
``HF_TOKEN`` at run time instead. A token that is given but cannot download the model
fails the build: an image that silently lacks its model is worse than no image.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path


def read_token(path: Path) -> str | None:
    try:
        token = path.read_text().strip()
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return None
    return token or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secret-file", type=Path, default=Path("/run/secrets/hf_token"))
    parser.add_argument("--repo-id", default="pyannote/speaker-diarization-community-1")
    parser.add_argument(
        "--revision", default="main", help="branch, tag or commit (pin a commit for releases)"
    )
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument(
        "--require",
        action="store_true",
        default=os.environ.get("REQUIRE_MODEL") == "1",
        help="fail when no token is given (default: on when REQUIRE_MODEL=1, the image's build arg)",
    )
    args = parser.parse_args(argv)

    token = read_token(args.secret_file)
    if token is None:
        print(
            f"fetch_model: no hf_token build secret: {args.repo_id} is NOT baked in. At run time set "
            "PIPELINE_PYANNOTE_MODEL to the hub id and HF_TOKEN, or rebuild with "
            "--secret id=hf_token,env=HF_TOKEN",
            file=sys.stderr if args.require else sys.stdout,
        )
        return 2 if args.require else 0

    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    from huggingface_hub import snapshot_download

    cache = Path(tempfile.mkdtemp(prefix="hf-cache-"))
    try:
        snapshot_download(
            repo_id=args.repo_id, revision=args.revision, local_dir=args.dest, cache_dir=cache, token=token
        )
    except Exception as exc:  # noqa: BLE001 - the message may echo request details: print the type only
        print(
            f"fetch_model: downloading {args.repo_id}@{args.revision} failed: {type(exc).__name__}",
            file=sys.stderr,
        )
        return 1
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(args.dest / ".cache", ignore_errors=True)  # download metadata, not model files

    if not (args.dest / "config.yaml").is_file():
        print(f"fetch_model: {args.dest} has no config.yaml: not a pyannote pipeline", file=sys.stderr)
        return 1
    files = sorted(str(p.relative_to(args.dest)) for p in args.dest.rglob("*") if p.is_file())
    print(f"fetch_model: {args.repo_id}@{args.revision} baked into {args.dest}: {', '.join(files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
