"""The staged loader: the options, the problem lists, the rejects, and the set-based checks
over the staged rows (the same SQL on both dialects); staging and writing are the store's.

The pipeline sits above the loader and nothing imports back up.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Literal

from sqlalchemy import Connection, text
from sqlmodel import Session

from itemctl.core.errors import ConflictError, PermissionDenied, UsageError
from itemctl.services.bulk.readers import Format
from itemctl.services.bulk.validation import ValidRow
from itemctl.store import store_for

Mode = Literal["insert", "upsert", "skip", "sync"]
MAX_REPORTED = 20
BATCH = 1000


@dataclass
class Problems:
    """The first errors, in full, and how many there were."""

    total: int = 0
    first: list[tuple[int, int, str]] = field(default_factory=list)

    def add(self, line: int, row: int, message: str) -> None:
        self.total += 1
        self.first.append((line, row, message))
        self.first.sort()
        del self.first[MAX_REPORTED:]

    def report(self, what: str) -> str:
        lines = [f"{where(line, row)}: {message}" for line, row, message in self.first]
        more = self.total - len(self.first)
        tail = f"; and {more} more" if more > 0 else ""
        return f"{self.total} {what} row(s), nothing was imported: " + "; ".join(lines) + tail


def where(line: int, row: int) -> str:
    """``line 2501 (row 2500)``: the line in the file, and the record's number when it differs."""
    return f"line {line}" if line == row else f"line {line} (row {row})"


def require_permission(row: ValidRow, username: str, is_admin: bool) -> None:
    """Only an admin imports items for another user: the first such row stops the import.

    The actor comes as plain values, read once: this runs for every row."""
    if row.owner != username and not is_admin:
        raise _not_yours(row.line, row.row, row.owner, username)


def _not_one_owner(line: int, row: int, other: str, owner: str) -> UsageError:
    return UsageError(
        f"{where(line, row)}: owner {other!r} is not {owner!r}; {{mode}} sync makes one owner's items equal to the input, nothing was changed",
        hint="give one owner's rows, or leave the owner column empty",
        fields=("mode",),
    )


def _not_yours(line: int, row: int, owner: str, username: str) -> PermissionDenied:
    return PermissionDenied(
        f"{where(line, row)}: only an admin may import items for another user (owner {owner!r}; you are {username!r})"
    )


class Rejects:
    """Where ``--rejects`` sets invalid rows aside: one JSON object per line."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.count = 0

    def write(self, line: int, row: int, reason: str, record: object) -> None:
        self.stream.write(json.dumps({"line": line, "row": row, "reason": reason, "record": record}, ensure_ascii=False) + "\n")
        self.count += 1


@dataclass
class ImportOptions:
    fmt: Format
    encoding: str = "utf-8"
    delimiter: str = ","
    source: str | None = None  # the file name, for the audit trail
    mode: Mode = "insert"
    owner: str | None = None
    exclusive: bool = False
    rejects: Rejects | None = None
    on_progress: Callable[[int], None] | None = None  # called with the rows read so far
    on_phase: Callable[[str], None] | None = None  # "checking", then "writing"
    on_notice: Callable[[str], None] | None = None
    allow_empty: bool = False  # sync: an input with no rows may delete every item of the owner
    list_deleted: bool = False  # sync: name the titles deleted (a dry run shows them)


# The checks below are the same SQL on both dialects.
UNKNOWN_OWNERS = """
    SELECT s.line, s.rownum, s.owner, count(*) OVER () FROM import_row s
    WHERE NOT EXISTS (SELECT 1 FROM "user" u WHERE u.username = s.owner)
    ORDER BY s.line LIMIT :limit
"""
DUPLICATES = """
    SELECT d.line, d.rownum, d.first_line, d.first_row, d.owner, d.title, count(*) OVER () FROM (
        SELECT s.line, s.rownum, s.owner, s.title,
               first_value(s.line) OVER w AS first_line, first_value(s.rownum) OVER w AS first_row
        FROM import_row s
        WINDOW w AS (PARTITION BY s.owner, s.title ORDER BY s.rownum)
    ) d
    WHERE d.rownum <> d.first_row
    ORDER BY d.rownum LIMIT :limit
"""
CONFLICTS = """
    SELECT s.line, s.rownum, s.owner, s.title, count(*) OVER () FROM import_row s
    JOIN "user" u ON u.username = s.owner
    JOIN item i ON i.owner_id = u.id AND i.title = s.title
    ORDER BY s.line LIMIT :limit
"""
REJECT_UNKNOWN_OWNERS = """
    DELETE FROM import_row
    WHERE NOT EXISTS (SELECT 1 FROM "user" u WHERE u.username = import_row.owner)
    RETURNING line, rownum, owner, source
"""
# Records are told apart by their number, not their line: a JSON array may hold many
# records on one line.
REJECT_DUPLICATES = """
    DELETE FROM import_row
    WHERE rownum IN (
        SELECT d.rownum FROM (
            SELECT s.rownum, min(s.rownum) OVER (PARTITION BY s.owner, s.title) AS first_row
            FROM import_row s
        ) d WHERE d.rownum <> d.first_row
    )
    RETURNING line, rownum, owner, title, source
"""


class Loader:
    """The checks over the staged rows; the dialect's store stages and writes them."""

    def __init__(self, session: Session, connection: Connection, options: ImportOptions) -> None:
        self.session = session
        self.connection = connection
        self.options = options
        self.store = store_for(connection)
        # sync: the titles of rows set aside (--rejects); the file lists those items, so
        # they are kept as they are. Only the rejected rows' titles are held.
        self.rejected_titles: set[str] = set()

    def _query(self, sql: str, **params):
        return self.connection.execute(text(sql), params).all()

    def find_unknown_owners(self, problems: Problems) -> None:
        rows = self._query(UNKNOWN_OWNERS, limit=MAX_REPORTED)
        for line, row, owner, _total in rows:
            problems.add(line, row, f"owner: unknown user {owner!r}")
        if rows:
            problems.total += rows[0][-1] - len(rows)

    def find_duplicates(self, problems: Problems) -> None:
        """Add every repeat of an (owner, title) after its first line to ``problems``."""
        rows = self._query(DUPLICATES, limit=MAX_REPORTED)
        for line, row, first_line, first_row, owner, title, _total in rows:
            problems.add(line, row, f"title: {title!r} for owner {owner!r} is also on {where(first_line, first_row)}")
        if rows:
            problems.total += rows[0][-1] - len(rows)

    def reject_unknown_owners_and_duplicates(self) -> None:
        rejects = self.options.rejects
        for line, row, owner, source in self._query(REJECT_UNKNOWN_OWNERS):
            rejects.write(line, row, f"owner: unknown user {owner!r}", json.loads(source))
        for line, row, owner, title, source in self._query(REJECT_DUPLICATES):
            rejects.write(line, row, f"title: {title!r} for owner {owner!r} appears on an earlier line", json.loads(source))

    def require_own_rows(self, username: str) -> None:
        """``require_permission`` over the staged rows, for an actor who is no admin."""
        rows = self._query(
            "SELECT line, rownum, owner FROM import_row WHERE owner <> :username ORDER BY rownum LIMIT 1",
            username=username,
        )
        if rows:
            raise _not_yours(*rows[0], username)

    def check_conflicts(self) -> None:
        rows = self._query(CONFLICTS, limit=MAX_REPORTED)
        if not rows:
            return
        shown = "; ".join(
            f"{where(line, row)}: item {title!r} already exists for {owner}" for line, row, owner, title, _ in rows
        )
        total = rows[0][-1]
        more = total - len(rows)
        raise ConflictError(
            f"{total} row(s) conflict with existing items, nothing was imported: {shown}"
            + (f"; and {more} more" if more > 0 else ""),
            hint="use {mode} skip to keep existing items, or {mode} upsert to replace their description and tags",
            fields=("mode",),
        )

    def require_one_owner(self, owner: str) -> None:
        """sync makes one owner's items equal to the input: a row of another is a usage error."""
        rows = self._query("SELECT line, rownum, owner FROM import_row WHERE owner <> :owner ORDER BY rownum LIMIT 1", owner=owner)
        if rows:
            raise _not_one_owner(*rows[0], owner)

    def keep_rejected(self, line: int, row: int, data: object) -> None:
        """sync, a row set aside: another owner's row is still a usage error; otherwise
        the item it names by its title (trimmed, NFC, as stored) is not deleted, because
        the file lists it. A row without a usable title names no item."""
        fields = data if isinstance(data, dict) else getattr(data, "fields", None) or {}
        owner = fields.get("owner")
        if isinstance(owner, str) and owner.strip() and owner.strip() != self.options.owner:
            raise _not_one_owner(line, row, owner.strip(), self.options.owner)
        title = fields.get("title")
        if isinstance(title, str) and title.strip():
            self.rejected_titles.add(unicodedata.normalize("NFC", title.strip()))

    def staged_rows(self) -> int:
        return self._query("SELECT count(*) FROM import_row")[0][0]

    def delete_missing(self, owner: str) -> tuple[int, list[str]]:
        """Delete the owner's items whose titles the input lacks; (count, their titles when
        ``list_deleted``). One set-based statement whatever the number."""
        missing = (
            'FROM item WHERE owner_id = (SELECT id FROM "user" WHERE username = :owner) '
            "AND NOT EXISTS (SELECT 1 FROM import_row s WHERE s.title = item.title)"
        )
        # The session's own temporary table, always named with its schema: a table of the
        # user's that shares the name is never touched.
        kept = "pg_temp.import_kept" if self.connection.dialect.name == "postgresql" else "temp.import_kept"
        if self.rejected_titles:
            self.connection.execute(text(f"DROP TABLE IF EXISTS {kept}"))
            self.connection.execute(text(f"CREATE TABLE {kept} (title text NOT NULL)"))
            self.connection.execute(
                text(f"INSERT INTO {kept} (title) VALUES (:title)"), [{"title": t} for t in sorted(self.rejected_titles)]
            )
            missing += f" AND NOT EXISTS (SELECT 1 FROM {kept} k WHERE k.title = item.title)"
        titles = [t for (t,) in self._query(f"SELECT title {missing} ORDER BY title", owner=owner)] if self.options.list_deleted else []
        deleted = self.connection.execute(text(f"DELETE {missing}"), {"owner": owner}).rowcount
        if self.rejected_titles:
            self.connection.execute(text(f"DROP TABLE {kept}"))
        return deleted, titles

    @contextmanager
    def loading(self) -> Iterator[None]:
        """Stage the rows given to ``add`` while the block runs."""
        self.exclusive = self.store.exclusive(self.options.on_notice) if self.options.exclusive else None
        if self.exclusive:
            self.exclusive.take()
        with self.store.staging(keep_source=self.options.rejects is not None) as self.add:
            yield

    def add(self, row: ValidRow) -> None:
        """Stage one valid row (while ``loading``)."""
        raise RuntimeError("add() outside loading()")

    def write(self) -> tuple[int, int]:
        """Apply the staged rows; (inserted, updated). Raises ``RepeatedRows`` when the
        unique index on (owner, title) refuses them."""
        # sync writes as upsert; what the file lacks went before (delete_missing).
        written = self.store.write_staged("upsert" if self.options.mode == "sync" else self.options.mode)
        if self.exclusive:
            self.exclusive.restore()
        return written
