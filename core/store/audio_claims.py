"""The claim log: every video's claim on its audio, in the one order all claimers agree on.

Entry n is ``corpus/audio/claims/{n}.json``, created only if absent (If-None-Match). A
claimer reads the log to its end, decides, and creates the next number; if another
claimer created that number first, the create fails and the claimer reads on and decides
again, now knowing the other's claim. So of two copies of one episode claiming at the
same moment, on any number of machines, exactly one is the original: the one whose entry
has the lower number. No entry is ever rewritten.
"""

from __future__ import annotations

from core.contracts.corpus import ClaimEntry
from core.store.layout import audio_claim_key, audio_claims_folder
from core.store.objects import ObjectStore


class ClaimLog:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.folder = audio_claims_folder(store.prefix)

    def numbers_after(self, seq: int) -> list[int]:
        """The numbers of the entries after ``seq`` (0: from the first), in order."""
        start = audio_claim_key(self.store.prefix, seq) if seq > 0 else None
        found = []
        for key, _modified in self.store.list_objects(self.folder, start_after=start):
            name = key.removeprefix(self.folder).removesuffix(".json")
            if name.isdigit():
                found.append(int(name))
        return sorted(found)

    def read(self, seq: int) -> ClaimEntry:
        return ClaimEntry.model_validate(self.store.get_json(audio_claim_key(self.store.prefix, seq)))

    def append(self, seq: int, entry: ClaimEntry) -> bool:
        """Create entry ``seq``; False if another claimer created it first."""
        return self.store.create_json(audio_claim_key(self.store.prefix, seq), entry.model_dump(mode="json"))
