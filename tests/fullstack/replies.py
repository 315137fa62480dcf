"""Stream entries as XRANGE and XREAD return them to the tests: every one with its fields."""

from __future__ import annotations

from taskhub.messaging.streams import Entry, Fields


def with_fields(entries: list[Entry]) -> list[tuple[str, Fields]]:
    """`entries` (from entries_of or read_entries) with their fields. Only a consumer that
    re-reads its pending entries is given a deleted one (no fields); XRANGE and XREAD are not."""
    present: list[tuple[str, Fields]] = []
    for entry_id, fields in entries:
        assert fields is not None, f"stream entry {entry_id} has no fields"
        present.append((entry_id, fields))
    return present
