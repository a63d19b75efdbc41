"""``python -m starter export``: pack a batch's committed videos into training shards.

    python -m starter export --batch-id ID --format lhotse-shar|webdataset [--view clips|windows]
        [--min-dnsmos X] [--min-s S] [--max-s S] [--min-bandwidth-hz HZ] [--min-snr-db DB]
        [--max-music F] [--language CODE] [--min-language-p P] [--max-hours-per-speaker H]
        [--sample-rate HZ] [--wait]

Starts (or joins) the batch's ExportWorkflow for that spec. Run it again once more
videos are committed: the export is extended, nothing already written is rewritten.
"""

from __future__ import annotations

import argparse

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.contracts import queues
from core.contracts.export import ExportFilters, ExportJob, ExportSpec, ExportTotals
from core.contracts.ids import PROGRESS_QUERY, export_workflow_id
from core.service.settings import Settings
from core.store.layout import ExportKeys, batch_input_key
from core.store.objects import ObjectStore
from starter.progress import ProgressLine, duration, showing


def add_parser(sub: argparse._SubParsersAction, batch_id: type) -> None:
    export = sub.add_parser(
        "export", help="pack a batch's committed videos into shards (lhotse-shar, webdataset)"
    )
    export.add_argument("--batch-id", type=batch_id, required=True)
    export.add_argument("--format", choices=["lhotse-shar", "webdataset"], required=True)
    export.add_argument(
        "--view",
        choices=["clips", "windows"],
        default="clips",
        help="single-speaker clips (default) or long multi-speaker windows with RTTM",
    )
    for flag, text in [
        ("--min-dnsmos", "DNSMOS OVRL at least"),
        ("--min-s", "clip seconds at least"),
        ("--max-s", "clip seconds at most"),
        ("--min-bandwidth-hz", "audio bandwidth at least"),
        ("--min-snr-db", "estimated SNR at least"),
        ("--max-music", "share of the clip under music at most"),
    ]:
        export.add_argument(flag, type=float, help=f"keep clips with {text}")
    export.add_argument("--language", help="keep clips whose speaker speaks it (Whisper's code: en, de, ...)")
    export.add_argument(
        "--min-language-p", type=float, help="keep clips whose spoken language has this probability at least"
    )
    export.add_argument(
        "--max-hours-per-speaker",
        type=_positive,
        help="keep a global speaker's clips in the share this is of its clean speech (linked videos)",
    )
    export.add_argument(
        "--sample-rate", type=int, help="resample the clips (default: the committed original's)"
    )
    export.add_argument("--wait", action="store_true", help="wait for the export and print its totals")


def _positive(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 (got {value})")
    return number


def spec_from_args(args: argparse.Namespace, settings: Settings) -> ExportSpec:
    filters = ExportFilters(
        min_dnsmos=args.min_dnsmos,
        min_s=args.min_s,
        max_s=args.max_s,
        min_bandwidth_hz=args.min_bandwidth_hz,
        min_snr_db=args.min_snr_db,
        max_music=args.max_music,
        language=args.language,
        min_language_p=args.min_language_p,
    )
    return ExportSpec(
        batch_id=args.batch_id,
        format=args.format,
        view=args.view,
        filters=filters,
        clip_policy=settings.clip_policy,
        sample_rate=args.sample_rate,
        max_hours_per_speaker=args.max_hours_per_speaker,
    )


async def cmd_export(args: argparse.Namespace, settings: Settings, client: Client) -> int:
    spec = spec_from_args(args, settings)
    try:
        totals = await run_export(client, settings, spec, wait=args.wait)
    except ExportNotPossible as exc:
        print(f"batch {spec.batch_id}: {exc}")
        return 1
    return 0 if totals is not None or not args.wait else 1


def export_text(so_far: ExportTotals, view: str, waited_s: float) -> str:
    """The export's progress line: what its shards hold so far."""
    failed = f", {so_far.failed} failed" if so_far.failed else ""
    return (
        f"export: {so_far.videos} videos{failed}, {so_far.items} {view}, {so_far.audio_s / 3600:.2f} h, "
        f"{so_far.bytes / 1e6:.1f} MB so far | {duration(waited_s)}"
    )


class ExportNotPossible(Exception):
    """The batch has no input in storage: nothing names its videos."""


async def run_export(client: Client, settings: Settings, spec: ExportSpec, wait: bool) -> ExportTotals | None:
    """Start (or join) the export of ``spec``; with ``wait``, its totals once it is done
    (None if it did not complete)."""
    store = ObjectStore(settings)
    source = batch_input_key(store.prefix, spec.batch_id)
    if not store.exists(source):
        raise ExportNotPossible(f"no input in storage ({source}); start the batch first")
    keys = ExportKeys(store.prefix, spec)
    job = ExportJob(
        spec=spec,
        input_key=source,
        queue_prefix=settings.task_queue_prefix,
        heartbeat_timeout_s=settings.heartbeat_timeout_s,
    )
    workflow_id = export_workflow_id(spec.batch_id, spec.name)
    # imports the pipeline's activities: only the commands that start a workflow pay for it
    from workflows.export import ExportWorkflow

    try:
        handle = await client.start_workflow(
            ExportWorkflow.run,
            job,
            id=workflow_id,
            task_queue=queues.workflow_queue(settings.task_queue_prefix),
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,  # a later run extends the export
        )
        print(f"export {workflow_id}: started ({spec.format}, {spec.view}) -> {keys.root}")
    except WorkflowAlreadyStartedError:
        handle = client.get_workflow_handle_for(ExportWorkflow.run, workflow_id)
        print(f"export {workflow_id}: already running; joining it")
    if not wait:
        return None

    async def poll(line: ProgressLine, waited_s: float, final: bool) -> None:
        so_far = await handle.query(PROGRESS_QUERY, result_type=ExportTotals)
        line.show(export_text(so_far, spec.view, waited_s), f"{so_far.videos} {so_far.failed}", final)

    async with showing(poll):
        totals: ExportTotals = await handle.result()
    if (await handle.describe()).status != WorkflowExecutionStatus.COMPLETED:
        return None
    print(
        f"export {workflow_id}: {totals.videos} videos, {totals.items} {spec.view}, "
        f"{totals.audio_s / 3600:.2f} h, {totals.bytes / 1e6:.1f} MB in {keys.index}"
        + (f"; {totals.not_committed} not committed yet (run again later)" if totals.not_committed else "")
        + (f"; {totals.failed} failed (worker log: export.shard_failed)" if totals.failed else "")
        + (
            f"; {totals.duplicates} duplicates (their originals' shards hold the audio)"
            if totals.duplicates
            else ""
        )
        + (f"; {totals.clips_capped} clips over their speaker's cap left out" if totals.clips_capped else "")
    )
    return totals
