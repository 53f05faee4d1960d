"""The replicated log's entries: one change to a city's data, as the leader published it.

The leader appends an :class:`Entry` to a Redis stream per city before it applies
the change; every follower applies the same entries in the same order.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pandas as pd

from data import Batch
from store.replication.codec import decode_frame, from_json, to_json

Op = Literal["batch", "error", "expire"]


@dataclass(frozen=True)
class Entry:
    """One change to a city's data, as the leader published it.

    ``version`` is the data version *before* the change: a follower whose version
    differs has missed something and reloads the last checkpoint.
    """

    op: Op
    seq: int
    version: int
    moment: pd.Timestamp  # city time the change was applied at
    now: datetime  # wall time (what health reports as the last read)
    source: str = ""
    frame: bytes = b""
    replace: bool = False
    rejected: Mapping[str, int] = field(default_factory=dict)
    cursor: Any = None
    warnings: tuple[str, ...] = ()
    error: str = ""
    pid: int = 0

    def fields(self) -> dict[bytes, bytes]:
        """The stream entry's field/value pairs."""
        cursor = json.dumps(to_json(self.cursor))
        return {
            b"op": self.op.encode(), b"seq": str(self.seq).encode(),
            b"version": str(self.version).encode(), b"moment": str(self.moment.value).encode(),
            b"now": self.now.isoformat().encode(), b"source": self.source.encode(),
            b"replace": b"1" if self.replace else b"0",
            b"rejected": json.dumps(dict(self.rejected)).encode(), b"cursor": cursor.encode(),
            b"warnings": json.dumps(list(self.warnings)).encode(), b"error": self.error.encode(),
            b"pid": str(self.pid).encode(), b"frame": self.frame,
        }

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> Entry:
        """The entry a stream read returned (the inverse of :meth:`fields`)."""
        text = {k.decode(): v for k, v in fields.items()}
        return cls(
            op=text["op"].decode(),  # type: ignore[arg-type]
            seq=int(text["seq"]), version=int(text["version"]),
            moment=pd.Timestamp(int(text["moment"]), unit="ns", tz="UTC"),
            now=datetime.fromisoformat(text["now"].decode()), source=text["source"].decode(),
            frame=text.get("frame", b""), replace=text["replace"] == b"1",
            rejected=json.loads(text["rejected"]), cursor=from_json(json.loads(text["cursor"])),
            warnings=tuple(json.loads(text["warnings"])), error=text["error"].decode(),
            pid=int(text.get("pid", b"0")),
        )

    def batch(self, frame: pd.DataFrame | None = None) -> Batch:
        """The batch this entry carries (its frame decoded unless given)."""
        return Batch(frame=decode_frame(self.frame) if frame is None else frame,
                     rejected=Counter(self.rejected), replace=self.replace, cursor=self.cursor,
                     warnings=self.warnings)


class OutOfSync(RuntimeError):
    """A follower missed entries (or its state drifted): it must reload a checkpoint."""


class NotLeader(RuntimeError):
    """An append was refused: this process no longer holds the leader lock."""
