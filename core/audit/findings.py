"""What a verification of the audit chain reports: problems named by sequence number, and a summary.

Kinds of problem:

  modified      an event's content no longer matches its hash, or its hash was recomputed
                (the next event still links to the original), or the chain differs from a
                signed checkpoint (the whole chain was recomputed after an edit)
  missing       sequence numbers absent from the chain
  inserted      an event that the chain skips over, or a duplicate sequence number
  reordered     events whose links say they belong elsewhere in the order
  truncated after checkpoint   a signed checkpoint vouches for events that are gone
  bad signature a checkpoint (database or file) whose signature does not verify
  unknown chain a validly signed checkpoint in the file names a chain this database does not
                hold (the chain was replaced, or its id rewritten)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

MAX_PROBLEMS = 1_000

MODIFIED, MISSING, INSERTED, REORDERED = "modified", "missing", "inserted", "reordered"
TRUNCATED, BAD_SIGNATURE, UNKNOWN_CHAIN = "truncated after checkpoint", "bad signature", "unknown chain"
KINDS = (MODIFIED, MISSING, INSERTED, REORDERED, TRUNCATED, BAD_SIGNATURE, UNKNOWN_CHAIN)

FULL, INCREMENTAL = "full", "incremental"


@dataclass(frozen=True)
class Problem:
    first: int | None
    last: int | None
    kind: str
    detail: str
    where: str | None = None  # when there is no seq, e.g. "checkpoint file line 3"

    def __str__(self) -> str:
        if self.first is None:
            place = self.where or "chain"
        elif self.last is None or self.last == self.first:
            place = f"seq {self.first}"
        else:
            place = f"seq {self.first}-{self.last}"
        return f"{place}: {self.kind}: {self.detail}"


@dataclass
class VerifyResult:
    events: int = 0
    last_seq: int | None = None
    last_hash: str | None = None
    last_checkpoint: int | None = None
    pruned_before: int | None = None
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    signed: bool = False  # a key was available to check checkpoints
    dropped_problems: int = 0
    mode: str = FULL
    # Incremental: the verified checkpoint the walk started after (events up to it were not read again).
    verified_before: int | None = None
    workers: int = 1
    ranges: int = 0  # how many ranges were checked in parallel (0: the serial walk)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        checkpoint = (
            f"last checkpoint at {self.last_checkpoint}"
            if self.last_checkpoint is not None
            else "no signed checkpoint yet"
        )
        if self.verified_before is not None:
            text_ = f"{self.events} new events verified after the verified checkpoint at {self.verified_before}"
            text_ += f", {checkpoint}"
        else:
            text_ = f"{self.events} events verified, {checkpoint}"
        if self.pruned_before is not None:
            text_ += f", pruned before {self.pruned_before}"
        return text_

    def lines(self) -> list[str]:
        out = [str(p) for p in self.problems]
        if self.dropped_problems:
            out.append(f"... and {self.dropped_problems} more problems")
        return out

    def add(self, problem: Problem) -> None:
        if len(self.problems) >= MAX_PROBLEMS:
            self.dropped_problems += 1
        elif problem not in self.problems[-8:]:
            self.problems.append(problem)


Progress = Callable[[int, int], None]
