"""Which yt-dlp options an operator may set (``PIPELINE_YTDLP_OPTIONS``): an allowlist.

yt-dlp's options include ones that run commands (``postprocessors`` with Exec,
``netrc_cmd``, ``exec_cmd``), print cookies and proxy credentials (``verbose``,
``print_traffic``, ``dump_intermediate_pages``, ``write_pages``), drop TLS checks
(``nocheckcertificate``), hand the download to unchecked programs (``external_downloader``)
or move files (``paths``, ``outtmpl``). A denylist misses the next one yt-dlp adds, so
only the options below pass: what operators tune to get past a source's limits (sleeps,
client, headers, geo), none of which reaches a shell, the disk or a secret. The
pipeline's own options (bounds, paths, safety) are set by ``core.sources.download`` and cannot
be overridden. Checked when settings load, so a worker with a refused option never starts.
"""

from __future__ import annotations

from typing import Any

ALLOWED_YTDLP_OPTIONS = frozenset(
    {
        "extractor_args",  # e.g. {"youtube": {"player_client": ["web"]}}
        "sleep_interval",
        "max_sleep_interval",
        "sleep_interval_requests",
        "http_headers",
        "geo_bypass",
        "geo_bypass_country",
        "geo_bypass_ip_block",
        "source_address",
        "extractor_retries",
        "fragment_retries",
        "skip_unavailable_fragments",
        "concurrent_fragment_downloads",
        "http_chunk_size",
        "ratelimit",
        "throttledratelimit",
        "format_sort",
        "age_limit",
        "impersonate",
    }
)


def check_ytdlp_options(options: dict[str, Any]) -> dict[str, Any]:
    refused = sorted(set(options) - ALLOWED_YTDLP_OPTIONS)
    if refused:
        raise ValueError(
            f"yt-dlp options {refused} are not allowed in PIPELINE_YTDLP_OPTIONS; "
            f"allowed: {', '.join(sorted(ALLOWED_YTDLP_OPTIONS))}"
        )
    return options
