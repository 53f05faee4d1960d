"""Delimited text read line by line so that every line is accounted for.

pandas and the :mod:`csv` module both lose rows silently on two kinds of damage: an
unterminated quote swallows every line after it into one field (2,699 of 3,001 rows
gone in one export), and a field over the csv module's limit drops its row. Neither can
resynchronise, so this reader drives :mod:`csv` itself (no parsing of its own): when a
record comes out the wrong width after spanning several physical lines, only its first
line is rejected (``unterminated quote``) and the lines after it are parsed again.

Every data line ends up in exactly one place: a row, or a rejection by reason with a
dead letter. Text that is not valid in the declared encoding is decoded with U+FFFD
and its row rejected (``not valid <encoding>``), never loaded as mojibake.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

import pandas as pd

from data.validate import DeadLetter, dead_letter

#: A single field may be this large (a long free-text description); the csv module's
#: default limit (128 KiB) dropped such rows. The limit is process-wide in :mod:`csv`.
MAX_FIELD = 16 * 1024 * 1024
#: A quoted field may span this many physical lines before the quote counts as unterminated.
MAX_RECORD_LINES = 1000
#: Cells read as missing, as pandas reads them by default.
NA_VALUES = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
                       "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a",
                       "nan", "null"})
_DEAD_PER_READ = 100

if csv.field_size_limit() < MAX_FIELD:
    csv.field_size_limit(MAX_FIELD)


class _RecordTooLong(Exception):
    """A record has run over :data:`MAX_RECORD_LINES` lines: its quote never closed."""


class _Lines:
    """Physical lines with push-back, remembering the ones the current record took."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self.back: deque[str] = deque()
        self.taken: list[str] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if len(self.taken) >= MAX_RECORD_LINES:
            raise _RecordTooLong
        line = self.back.popleft() if self.back else next(self._lines)
        self.taken.append(line)
        return line


@dataclass
class CsvRead:
    """Rows of one read, and how every other line was accounted for."""

    frame: pd.DataFrame
    lines_in: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: The last line is cut off (no line end, and it does not parse): a half-written file.
    truncated: bool = False


def read_csv(stream: IO[bytes], encoding: str = "utf-8", delimiter: str = ",") -> CsvRead:
    """Read delimited text from a binary stream, every string, accounting for each line."""
    text = io.TextIOWrapper(stream, encoding=encoding, errors="replace", newline="")
    lines = _Lines(iter(text))
    rejected: Counter[str] = Counter()
    dead: deque[DeadLetter] = deque(maxlen=_DEAD_PER_READ)
    invalid = f"not valid {encoding}"

    def reject(reason: str, raw: str) -> None:
        rejected[reason] += 1
        dead.append(dead_letter(reason, raw))

    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return CsvRead(pd.DataFrame())
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    width, rows, lines_in = len(header), [], 0
    truncated = False
    while True:
        lines.taken = []
        why: str | None = None
        try:
            record = next(reader)
        except StopIteration:
            break
        except (csv.Error, _RecordTooLong) as exc:
            record, why = None, ("unterminated quote" if isinstance(exc, _RecordTooLong)
                                 or "end of data" in str(exc) else "malformed line")
        taken = lines.taken
        if not taken:
            break
        if record == [] and len(taken) == 1:
            continue  # a blank line, as pandas skips it
        lines_in += 1
        at_end = not taken[-1].endswith(("\n", "\r"))
        if record is not None and len(taken) > 1 and (len(record) != width or at_end):
            # A quote still open at the end of the text, or a record of the wrong width
            # over several lines: a quote that never closed.
            why = "unterminated quote"
        # The text ends in this record: it decides whether the file was cut off.
        truncated = at_end and (record is None or len(record) != width or len(taken) > 1)
        if why == "unterminated quote" and len(taken) > 1:
            # Only the line that opened the quote is bad: read the others again.
            reject(why, taken[0])
            lines.back.extendleft(reversed(taken[1:]))
            reader = csv.reader(lines, delimiter=delimiter)
            continue
        if record is None or len(record) > width:
            reject(why or "malformed line", "".join(taken))
            continue
        if any("\ufffd" in cell for cell in record):
            reject(invalid, "".join(taken))
            continue
        # A line with fewer fields is read with the missing fields empty (as pandas does).
        rows.append([None if cell in NA_VALUES else cell for cell in record]
                    + [None] * (width - len(record)))
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    return CsvRead(frame, lines_in, rejected, list(dead), truncated)


__all__ = ["MAX_FIELD", "CsvRead", "read_csv"]
