"""CSV as itemctl writes it, the same on every backend and in every command.

Lines end in ``\\n`` (contract §5), and a value holding ``\\r`` or ``\\n`` is quoted, as
PostgreSQL's ``COPY … CSV`` does, so an export from SQLite and one from PostgreSQL are
byte-identical. Python's writer quotes only for the characters of its line terminator,
so rows are written with ``\\r\\n`` and each row's terminator becomes ``\\n`` on the way out.
"""

from __future__ import annotations

import csv
from typing import IO


class _LineFeedRows:
    """A file wrapper: ``csv.writer`` writes each row with one ``write`` call."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def write(self, row: str) -> int:
        return self.out.write(row[:-2] + "\n" if row.endswith("\r\n") else row)


def csv_writer(out: IO[str]):
    """A ``csv.writer`` on ``out`` with ``\\n`` line endings and PostgreSQL's quoting."""
    return csv.writer(_LineFeedRows(out), lineterminator="\r\n")
