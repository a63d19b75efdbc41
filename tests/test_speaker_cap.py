"""The export's per-speaker hour cap (core.training.speaker_cap): a share of each prolific
speaker's clips, decided by each clip's id, so pages and reruns decide alike."""

from __future__ import annotations

from core.contracts.clips import Clip
from core.training.speaker_cap import draw, share, within_cap


def clips_of(speaker_id: str | None, count: int, video: str = "v") -> list[Clip]:
    return [
        Clip(
            clip_id=f"{video}_{i:09d}_{i + 1:09d}",
            video_id=video,
            start=i,
            end=i + 10.0,
            speaker="A",
            speaker_id=speaker_id,
        )
        for i in range(count)
    ]


def test_a_prolific_speaker_keeps_its_share_and_the_others_all():
    host, guest, unlinked = (
        clips_of("spk_host", 4000),
        clips_of("spk_guest", 50, "g"),
        clips_of(None, 50, "u"),
    )
    clean = {"spk_host": 10 * 3600.0, "spk_guest": 0.5 * 3600.0}
    kept = within_cap(host + guest + unlinked, 3600.0, clean)
    kept_host = [c for c in kept if c.speaker_id == "spk_host"]
    # a share of 1/10: 400 expected, 19 the standard deviation
    assert 300 < len(kept_host) < 500, len(kept_host)
    assert [c for c in kept if c.speaker_id != "spk_host"] == guest + unlinked, (
        "under the cap, or unlinked: all kept"
    )
    assert share(3600.0, 10 * 3600.0) == 0.1 and share(3600.0, 1800.0) == 1.0 and share(3600.0, 0.0) == 1.0


def test_the_cap_decides_each_clip_alike_in_any_order_or_page():
    clips = clips_of("spk_host", 1000)
    clean = {"spk_host": 4 * 3600.0}
    whole = {c.clip_id for c in within_cap(clips, 3600.0, clean)}
    pages = {c.clip_id for page in (clips[500:], clips[:500]) for c in within_cap(page, 3600.0, clean)}
    assert whole == pages and 0 < len(whole) < len(clips)
    assert draw("v_000000001_000000002") == draw("v_000000001_000000002") != draw("v_000000002_000000003")
    assert all(0.0 <= draw(c.clip_id) < 1.0 for c in clips)
