"""``replay``: any file source, played back on the city clock as a live stream.

The demo city's live feed is its real 311 requests and taxi pickups replayed at
an accelerated clock. The file is read and normalised once (through the file
adapters, with the source's own field mapping); rows are then released in time
order as the city clock passes them. Row times are moved onto the clock — the
first row lands at the clock's start — keeping every interval between rows (and
between a request's opening and closing) as recorded, except gaps longer than
``compress_gaps`` (recorded samples months apart), which are shortened so the
replay does not sit idle. With ``loop`` the file plays again, ids suffixed with
the round number so they stay unique. The file may be compressed (``.csv.gz``, a
``.zip``), as for the ``file`` adapter.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from config.city import parse_duration
from config.kit import ConfigError
from data.base import AdapterContext, Batch
from data.files import AnyFileAdapter, FileSource


class ReplayAdapter(FileSource):
    name = "replay"
    options: ClassVar[frozenset[str]] = frozenset(
        {"path", "member", "layer_name", "encoding", "delimiter", "compress_gaps", "loop",
         "warmup"})
    streaming = True

    def __init__(self, source: Any, context: AdapterContext) -> None:
        super().__init__(source, context)
        gap = source.options.get("compress_gaps")
        self.max_gap = None if gap is None else parse_duration(f"{source.name}.compress_gaps", gap)
        self.loop = bool(source.options.get("loop", True))
        warmup = source.options.get("warmup", 0)
        self.warmup = parse_duration(f"{source.name}.warmup", warmup)
        #: The clock starts at a configured moment: rows keep their recorded times.
        self.anchored = context.clock.anchored
        if self.anchored:
            self.loop = False
            for key in ("warmup", "compress_gaps", "loop"):
                if key in source.options and not (key == "loop" and source.options[key] is False):
                    raise ConfigError(
                        f"[[sources]] {source.name!r}.{key}: not used with [live] start (the replay "
                        "then plays rows at their recorded times, those before the start already "
                        f"in); remove {key} or [live] start")
        self._rows: pd.DataFrame | None = None
        self._offsets: np.ndarray = np.empty(0)
        self._span = 0.0
        self._rejected: Any = None

    def _load(self) -> None:
        """Read and normalise the file once; compute each row's offset on the clock."""
        reader = AnyFileAdapter(replace(self.source, adapter=AnyFileAdapter.name), self.context)
        batch = reader.complete_snapshot()
        rows = batch.frame.dropna(subset=["time"]).sort_values("time", kind="stable")
        if self.anchored:
            # Seconds from the clock's start to each recorded time; what lies before
            # the start is the warm-up.
            start = (rows["time"] - self.context.clock.origin).dt.total_seconds().to_numpy()
            self.warmup = max(0.0, -float(start.min())) if len(start) else 0.0
            rows = rows.assign(_start=start)
        else:
            gaps = rows["time"].diff().dt.total_seconds().fillna(0.0).to_numpy()
            if self.max_gap is not None:
                gaps = np.minimum(gaps, self.max_gap)
            # With a warm-up, the first ``warmup`` seconds of the recording are already in
            # the past when the clock starts, so the map opens on a filled window.
            rows = rows.assign(_start=np.cumsum(gaps) - self.warmup)
        rows = rows.assign(_release=rows["_start"])
        if "closed_time" in rows:
            rows = self._split_closures(rows)
        rows = rows.sort_values("_release", kind="stable").reset_index(drop=True)
        self._offsets = rows["_release"].to_numpy()
        self._span = float(self._offsets.max()) + self.warmup + 1.0 if len(self._offsets) else 0.0
        self._rows = rows
        self._rejected = batch.rejected
        self._rejected["no time (cannot be replayed)"] += int(batch.frame["time"].isna().sum())
        self._rejected = +self._rejected  # drop zero counts

    def _split_closures(self, rows: pd.DataFrame) -> pd.DataFrame:
        """A request closed later is replayed twice: open when reported, closed when closed.

        So the replayed city has requests open *now* that close later, as it did.
        """
        later = rows["closed_time"].notna() & (rows["closed_time"] > rows["time"])
        opened = rows.loc[later].copy()
        opened["closed_time"] = pd.Series(pd.NaT, index=opened.index,
                                          dtype=rows["closed_time"].dtype)
        if "status" in opened:
            opened["status"] = pd.NA
        if self.role.derive is not None:
            opened = self.role.derive(opened)
        closing = rows.loc[later].copy()
        closing["_release"] = closing["_start"] + (
            closing["closed_time"] - closing["time"]).dt.total_seconds()
        return pd.concat([rows.loc[~later], opened, closing], ignore_index=True)

    def _release(self, start: float, end: float) -> pd.DataFrame:
        """Rows whose clock offset falls in (start, end], across loop rounds."""
        assert self._rows is not None
        if self._span == 0.0 or end <= start:
            return self._rows.iloc[0:0].drop(columns=["_start", "_release"])
        first_round = int(max(start + self.warmup, 0.0) // self._span)
        last_round = int(end // self._span) if self.loop else 0
        pieces = []
        origin = self.context.clock.origin
        for round_no in range(first_round, last_round + 1):
            base = round_no * self._span
            lo, hi = start - base, end - base
            mask = (self._offsets > lo) & (self._offsets <= hi)
            if round_no == 0 and start < -self.warmup:
                mask |= self._offsets <= hi
            if not mask.any():
                continue
            rows = self._rows.loc[mask].copy()
            if self.anchored:  # recorded times (and a single round)
                shift = pd.Series(pd.Timedelta(0), index=rows.index)
            else:
                offsets = pd.Series(pd.to_timedelta(rows["_start"].to_numpy() + base, unit="s"),
                                    index=rows.index)
                shift = (offsets + origin) - rows["time"]
            rows = rows.drop(columns=["_start", "_release"])
            for column in rows.columns:
                if str(rows[column].dtype).startswith("datetime64"):
                    rows[column] = rows[column] + shift
            if round_no:
                rows["id"] = rows["id"] + f"#{round_no}"
            pieces.append(rows)
        if not pieces:
            return self._rows.iloc[0:0].drop(columns=["_start", "_release"])
        # Within one release only the latest version of a row matters (e.g. a request
        # reported and already closed by now arrives closed).
        return pd.concat(pieces, ignore_index=True).drop_duplicates("id", keep="last") \
            .reset_index(drop=True)

    def snapshot(self) -> Batch:
        """Everything the clock has passed so far."""
        if self._rows is None:
            self._load()
        now = self.context.clock.elapsed()
        rows = self._release(-self.warmup - 1.0, now)
        return Batch(frame=rows, rejected=self._rejected.copy(), replace=True, cursor=now)

    def updates(self, since: Any) -> Batch:
        """Rows the clock passed since the cursor (an elapsed-seconds value)."""
        if self._rows is None:
            self._load()
        now = self.context.clock.elapsed()
        start = -self.warmup - 1.0 if since is None else float(since)
        return Batch(frame=self._release(start, now), replace=False, cursor=now)
