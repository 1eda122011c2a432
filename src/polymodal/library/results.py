"""What a library gives back: a hit (an item found, at its best facet), an answer and
its evidence, the report of an index run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from polymodal.data.errors import MediaError, SkipReport


@dataclass
class Hit:
    """One item found: its best-matching facet and what to show of it."""

    item: str
    key: str
    score: float
    column: str
    modality: str
    path: str
    text: str
    thumbnail: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Answer:
    """An answer in words and the items it rests on."""

    question: str
    answer: str
    evidence: list[Hit]
    method: str
    #: True when no hit reaches the score from which the model calls a match close
    nothing_close: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"question": self.question, "answer": self.answer, "method": self.method,
                "nothing_close": self.nothing_close,
                "evidence": [h.to_dict() for h in self.evidence]}


@dataclass
class IndexReport:
    """What an index run did. ``problems`` are the messages of the bad cells left out
    (each names its manifest, row, column and file); ``skipped`` holds them as a
    :class:`~polymodal.data.errors.SkipReport`, written to the library folder's
    ``skipped_rows.csv``."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    problems: list[str] = field(default_factory=list)
    skipped: SkipReport = field(default_factory=SkipReport)
    #: column -> (its modality, the cells it holds) for columns of a modality the
    #: library's model does not embed; each cell is in ``skipped`` too
    left_out: dict[str, tuple[str, int]] = field(default_factory=dict)
    embeds: list[str] = field(default_factory=list)

    def skip(self, err: MediaError) -> None:
        """Record a bad cell that was left out."""
        self.problems.append(str(err))
        self.skipped.add(err)

    def left_out_lines(self) -> list[str]:
        """One line per column left out because the model cannot embed it."""
        return [f"{n:,} {modality} cells of column {column!r}: the library's model "
                f"embeds {' and '.join(self.embeds)}, not {modality}"
                for column, (modality, n) in self.left_out.items() if n]
