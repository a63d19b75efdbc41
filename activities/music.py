"""detect_music: analysis audio -> music regions with probabilities, chunk by chunk."""

from __future__ import annotations

import math

import numpy as np
from temporalio import activity

from activities.model_stage import ModelStage, StageAttempt
from core.contracts.stages import Stage
from core.contracts.video import AudioRef, MusicResult

STAGE = Stage.MUSIC
RESULT = "music.json"


class MusicActivities(ModelStage[MusicResult]):
    stage, result_file, result_type = STAGE, RESULT, MusicResult

    @activity.defn
    def detect_music(self, audio: AudioRef) -> MusicResult:
        return self.reuse_or_run(audio.video_id, audio.attempt_id, lambda a: _detect(a, audio))


def _detect(attempt: StageAttempt, audio: AudioRef) -> MusicResult:
    from core.analysis import music  # scipy: loaded where music is detected

    with attempt.open_audio(audio) as recording:
        rate, duration = recording.rate, recording.duration_s
        # whole blocks per chunk, so chunk scores concatenate into the recording's
        blocks_per_chunk = max(1, round(attempt.rt.settings.chunk_s / music.BLOCK_S))
        length = int(blocks_per_chunk * music.BLOCK_S * rate)
        run = attempt.chunks(
            max(1, math.ceil(len(recording) / length)),
            lambda i, _batch: {"scores": music.block_scores(recording[i * length : (i + 1) * length], rate)},
            1,  # music.block_scores takes no batch size: the checkpoints are all it needs
        )
    scores = np.concatenate([r["scores"] for r in run.results])
    regions = music.regions_from_scores(scores, duration)
    result = MusicResult(
        **attempt.summary(run, RESULT),
        backend=music.BACKEND_NAME,
        num_regions=len(regions),
        music_s=round(sum(r.end - r.start for r in regions), 3),
    )
    return attempt.finish(result, regions=[r.model_dump() for r in regions])
