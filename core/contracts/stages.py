"""A video's stages, by name: the keys of its timings, attempts, workers and progress.

What each stage runs, on which queue and under which policy is the stage table in
``workflows/stages.py``; this is only the names, so ``core`` and the benchmarks can
spell them without importing workflow code.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    DOWNLOAD = "download"
    CLAIM = "claim"  # is its audio a copy of an earlier video's? Absent from runs before 2026-12-07
    DIARIZE = "diarize"
    MUSIC = "music"
    EMBED = "embed"
    LABELS = "labels"  # absent from videos committed before the labels stage
    COMMIT = "commit"  # its outputs, then metadata.json: "upload" in runs before 2026-12-07


MODEL_STAGES = (Stage.DIARIZE, Stage.MUSIC, Stage.EMBED, Stage.LABELS)
