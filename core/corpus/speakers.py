"""Speakers across videos: one global id for the same voice wherever it speaks.

A committed video names its speakers SPEAKER_00, SPEAKER_01, ... Linking describes each
such local speaker by the duration-weighted mean of the CAM++ embeddings of its clean
segments (no other voice, no music: ``local_speakers``; metadata.json's centroid also
pools overlapped speech, which pulls it towards the other voices). It gives every local
speaker a global speaker id: it joins the global speaker whose
linked members are closest to it when the cosine reaches ``link_cosine``, else it starts
a new one. Two rules keep a wrong merge rarer than a missed link, since a trainer's
speaker-disjoint splits break on the first and only lose a little on the second:
- a local speaker with less speech than ``min_speech_s`` has a noisy centroid: it gets a
  global id of its own and is never a member others join (``linked`` false);
- the local speakers of one video are different people (the diarization kept them apart),
  so no two of them join the same global speaker.

The members sit in an approximate-nearest-neighbour index (faiss HNSW, inner product of
unit vectors). Members never move and the index only grows: a new batch's videos join
the existing speakers without a rebuild. Within one call, videos are linked in the order
given, each against everything before it (the index for earlier calls, exact products
for this call's earlier videos), so the same videos in the same order get the same ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from core.analysis.speaker_embeddings import DIM
from core.contracts.metadata import SegmentRow

LINK_COSINE = 0.7  # benchmarks/README.md, "speakers across videos": in the gap, nearer precision
MIN_SPEECH_S = 10.0  # clean speech a centroid needs to link on (less: too noisy)
NEIGHBOURS = 16  # members the index returns for each query
HNSW_LINKS = 32  # faiss HNSW's M: graph degree (memory ~ 4 x DIM + 8 x M bytes a member)
# neighbours a query explores: at 300K members, 64 kept 0.955 of a person's members under
# one id, 256 kept 0.993 at twice the time (benchmarks/README.md)
HNSW_EF_SEARCH = 256
CHUNK = 4096  # local speakers linked per index query


@dataclass(frozen=True)
class LocalSpeaker:
    """One speaker of one committed video, as metadata.json has it."""

    video_id: str
    label: str  # SPEAKER_00, ...
    centroid: np.ndarray  # (DIM,) float32, unit length: CAM++'s (the index holds no other)
    speech_s: float


@dataclass(frozen=True)
class Link:
    """Where a local speaker went: its global id, and the cosine to the member it joined
    (None where it started a new global speaker)."""

    video_id: str
    label: str
    speaker_id: str
    cosine: float | None
    linked: bool  # had the speech to link on (and is a member others may join)


def local_speakers(
    video_id: str, segments: Sequence[SegmentRow], embeddings: np.ndarray
) -> list[LocalSpeaker]:
    """A video's speakers from its committed segments and embeddings.npy (row i: segment i):
    each one's centroid and speech over the segments nobody talks over and no music
    touches. A speaker without such a segment has no speech to link on."""
    speakers: list[LocalSpeaker] = []
    for label in sorted({s.speaker for s in segments}):
        rows = [i for i, s in enumerate(segments) if s.speaker == label and not s.overlap and not s.music]
        weights = np.array([segments[i].duration for i in rows], dtype=np.float64)
        centroid = np.zeros(embeddings.shape[1], np.float64)
        if rows:
            centroid = (embeddings[rows].astype(np.float64) * weights[:, None]).sum(axis=0)
            centroid /= max(float(np.linalg.norm(centroid)), 1e-8)
        speakers.append(LocalSpeaker(video_id, label, centroid.astype(np.float32), float(weights.sum())))
    return speakers


def new_speaker_id(video_id: str, label: str) -> str:
    """A global speaker's id: named after its first member, so a rerun names it the same."""
    return "spk_" + hashlib.sha256(f"{video_id}/{label}".encode()).hexdigest()[:16]


class SpeakerIndex:
    """The linked members (local speakers with enough speech) and their global ids."""

    def __init__(
        self,
        link_cosine: float = LINK_COSINE,
        min_speech_s: float = MIN_SPEECH_S,
        index: Any = None,  # a faiss IndexHNSWFlat (faiss ships no type hints)
        member_ids: Sequence[str] = (),
    ) -> None:
        self.link_cosine = link_cosine
        self.min_speech_s = min_speech_s
        if index is None:
            index = faiss.IndexHNSWFlat(DIM, HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
        self._index = index
        self._index.hnsw.efSearch = HNSW_EF_SEARCH
        self.member_ids: list[str] = list(member_ids)  # member i's global speaker
        if self._index.ntotal != len(self.member_ids):
            raise ValueError(f"{self._index.ntotal} vectors for {len(self.member_ids)} member ids")

    @property
    def members(self) -> int:
        return len(self.member_ids)

    def write(self, path: Path) -> None:
        """The index to a file (streamed to storage from there: no copy in memory)."""
        faiss.write_index(self._index, str(path))

    @classmethod
    def read(cls, path: Path, member_ids: Sequence[str], **settings: float) -> SpeakerIndex:
        return cls(index=faiss.read_index(str(path)), member_ids=member_ids, **settings)

    def link(self, videos: Iterable[Sequence[LocalSpeaker]]) -> list[Link]:
        """Link each video's speakers, in the order given, and add the linked ones."""
        links: list[Link] = []
        batch: list[Sequence[LocalSpeaker]] = []
        size = 0
        for video in videos:
            batch.append(video)
            size += len(video)
            if size >= CHUNK:
                links += self._link_chunk(batch)
                batch, size = [], 0
        if batch:
            links += self._link_chunk(batch)
        return links

    def _link_chunk(self, videos: list[Sequence[LocalSpeaker]]) -> list[Link]:
        speakers = [s for video in videos for s in video if s.speech_s >= self.min_speech_s]
        queries = np.stack([s.centroid for s in speakers]).astype(np.float32) if speakers else None
        hits: dict[int, dict[str, float]] = {}  # row of queries -> global id -> best cosine
        if queries is not None and self.members:
            cosines, neighbours = self._index.search(queries, min(NEIGHBOURS, self.members))
            for q, (cos_row, id_row) in enumerate(zip(cosines, neighbours, strict=True)):
                best: dict[str, float] = {}
                for cos, member in zip(cos_row, id_row, strict=True):
                    if member >= 0 and cos >= self.link_cosine:
                        gid = self.member_ids[member]
                        best[gid] = max(best.get(gid, -1.0), float(cos))
                hits[q] = best
        within = queries @ queries.T if queries is not None else None  # this chunk's own pairs

        links: list[Link] = []
        assigned: list[str] = []  # global id of queries row i, once its video is linked
        row = 0
        for video in videos:
            rows = list(range(row, row + sum(s.speech_s >= self.min_speech_s for s in video)))
            candidates: list[tuple[float, int, str]] = []
            for q in rows:
                best = dict(hits.get(q, {}))
                if within is not None:
                    earlier = within[q, : rows[0]]
                    for j in np.flatnonzero(earlier >= self.link_cosine):
                        gid = assigned[j]
                        best[gid] = max(best.get(gid, -1.0), float(earlier[j]))
                candidates += [(cos, q, gid) for gid, cos in best.items()]
            joined: dict[int, tuple[str, float]] = {}
            taken: set[str] = set()
            for cos, q, gid in sorted(candidates, key=lambda c: (-c[0], c[1], c[2])):
                if q not in joined and gid not in taken:
                    joined[q] = (gid, cos)
                    taken.add(gid)
            q = row
            for s in video:
                if s.speech_s < self.min_speech_s:
                    links.append(Link(s.video_id, s.label, new_speaker_id(s.video_id, s.label), None, False))
                    continue
                gid, cos = joined.get(q, (new_speaker_id(s.video_id, s.label), None))
                links.append(Link(s.video_id, s.label, gid, cos, True))
                assigned.append(gid)
                q += 1
            row = q
        if queries is not None:
            self._index.add(queries)
            self.member_ids += assigned
        return links
