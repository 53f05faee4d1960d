"""The event store's schema: three tables, their columns, and the H3 ranges SQL filters on.

Written once for both back-ends: ``{bigint}``, ``{real}`` and ``{time}`` become each
back-end's types, ``{events}``, ``{reports}`` and ``{audit}`` the (prefixed) table names.
"""

from __future__ import annotations

EVENT_COLUMNS = (
    "id", "category", "description", "channel", "lat", "lon", "cell", "merge_cell",
    "received_at", "last_report_at", "report_count", "status", "department", "due_at",
    "updated_at", "version", "source", "source_id", "dispatched_at", "dispatched_by",
    "resolved_at", "closed_at", "escalation",
)
#: Columns a change may write (everything but identity and where the event came from).
MUTABLE_COLUMNS = (
    "status", "department", "report_count", "last_report_at", "due_at", "updated_at",
    "version", "dispatched_at", "dispatched_by", "resolved_at", "closed_at", "escalation",
)
REPORT_COLUMNS = (
    "event_id", "source", "source_id", "reported_at", "category", "lat", "lon", "cell",
    "channel", "description", "agency", "source_status", "closed_at",
)
AUDIT_COLUMNS = (
    "event_id", "seq", "action", "from_status", "to_status", "department", "actor", "role",
    "at", "note",
)
#: Columns holding times (each back-end stores them its own way).
TIME_COLUMNS = frozenset({
    "received_at", "last_report_at", "due_at", "updated_at", "dispatched_at", "resolved_at",
    "closed_at", "reported_at", "at",
})

#: CREATE statements, safe to run on every start.
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS {events} (
        id {bigint} PRIMARY KEY,
        category TEXT NOT NULL,
        description TEXT NOT NULL,
        channel TEXT NOT NULL,
        lat {real} NOT NULL,
        lon {real} NOT NULL,
        cell {bigint} NOT NULL,
        merge_cell {bigint} NOT NULL,
        received_at {time} NOT NULL,
        last_report_at {time} NOT NULL,
        report_count INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ({statuses})),
        department TEXT NOT NULL,
        due_at {time} NOT NULL,
        updated_at {time} NOT NULL,
        version INTEGER NOT NULL,
        source TEXT NOT NULL,
        source_id TEXT NOT NULL,
        dispatched_at {time},
        dispatched_by TEXT,
        resolved_at {time},
        closed_at {time},
        escalation INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS {events}_status ON {events} (status, due_at)",
    "CREATE INDEX IF NOT EXISTS {events}_department ON {events} (department, status)",
    "CREATE INDEX IF NOT EXISTS {events}_received ON {events} (received_at)",
    "CREATE INDEX IF NOT EXISTS {events}_cell ON {events} (cell)",
    """CREATE TABLE IF NOT EXISTS {reports} (
        source TEXT NOT NULL,
        source_id TEXT NOT NULL,
        event_id {bigint} NOT NULL REFERENCES {events} (id),
        reported_at {time} NOT NULL,
        category TEXT NOT NULL,
        lat {real} NOT NULL,
        lon {real} NOT NULL,
        cell {bigint} NOT NULL,
        channel TEXT NOT NULL,
        description TEXT NOT NULL,
        agency TEXT,
        source_status TEXT,
        closed_at {time},
        PRIMARY KEY (source, source_id)
    )""",
    "CREATE INDEX IF NOT EXISTS {reports}_event ON {reports} (event_id)",
    """CREATE TABLE IF NOT EXISTS {audit} (
        event_id {bigint} NOT NULL REFERENCES {events} (id),
        seq INTEGER NOT NULL,
        action TEXT NOT NULL,
        from_status TEXT,
        to_status TEXT NOT NULL,
        department TEXT NOT NULL,
        actor TEXT NOT NULL,
        role TEXT NOT NULL,
        at {time} NOT NULL,
        note TEXT NOT NULL,
        PRIMARY KEY (event_id, seq)
    )""",
    # Small shared documents of the deployment (the alert book), one row each.
    """CREATE TABLE IF NOT EXISTS {documents} (
        name TEXT PRIMARY KEY,
        body TEXT,
        updated_at {time}
    )""",
)

_RES_SHIFT = 52  # where an H3 index keeps its resolution
_RES_MASK = 0xF << _RES_SHIFT


def cell_ranges(cell: int) -> list[tuple[int, int]]:
    """Inclusive int ranges holding every descendant of ``cell`` (and the cell itself).

    An H3 index is mode, resolution, base cell, then fifteen 3-bit digits, unused
    digits set to 7. The descendants at resolution ``b`` share the bits above the
    digits and digits ``1..r``; digits ``r+1..b`` vary and the rest stay 7, so they
    fill one contiguous range per resolution. This lets SQL filter stored base
    cells by a coarser cell with ``BETWEEN``.
    """
    res = (cell & _RES_MASK) >> _RES_SHIFT
    ranges = []
    for fine in range(res, 16):
        top = (cell & ~_RES_MASK) | (fine << _RES_SHIFT)
        varying = ((1 << (3 * (15 - res))) - 1) ^ ((1 << (3 * (15 - fine))) - 1)
        ranges.append((top & ~varying, top))
    return ranges
