"""SQLite's store (the embedded default): every bulk write of users, tags, items and links,
by ``executemany`` in batches and ``INSERT … SELECT``.

- each table's ``INSERT`` and how each of its values is stored (the models' column types
  say), used by restore and by the import's new tags;
- the staging tables (``import_row``, one row per record; ``import_tag``, one per tag of a
  record), filled with ``executemany``, and the set-based statements that write them into
  the tables in each import mode: items, tags and links with ``INSERT … SELECT``; skip and
  upsert find the existing items with one ``UPDATE … FROM``. The plan PostgreSQL's store
  follows, in SQLite's SQL;
- restore's writer: ``executemany`` into each table, parents first.

Every statement runs on the sqlite3 connection under the session: the same transaction.
Ids are made on the client (``new_id``). Column lists come from ``columns``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Connection, exc
from sqlalchemy.dialects import sqlite

from itemctl.core.text import fold_case
from itemctl.models.base import new_id, utcnow
from itemctl.store.columns import COLUMNS, ITEM_CONTENT, ITEM_CREATED, ITEM_ID, ITEM_KEY, ITEM_REPLACED, ITEM_UPDATED, KEEP, TABLES
from itemctl.store.columns import getter, insert_items, item_column
from itemctl.store.errors import RepeatedRows

BATCH = 1000
_DIALECT = sqlite.dialect()

# A file names few tags many times over: each distinct name is folded once.
_folded = lru_cache(maxsize=4096)(fold_case)


# -- the staging tables --------------------------------------------------------------------

# (column, type, whether a staged row fills it): the row of an import, as staged. rownum,
# the record's number, is the rowid: the rows stay in input order, and a record's tags find
# it by its key.
STAGED = (
    ("rownum", "INTEGER PRIMARY KEY", True),
    ("line", "INTEGER NOT NULL", True),
    ("id", "TEXT NOT NULL", True),
    *((name, item_column(name, _DIALECT), True) for name in ITEM_CONTENT),
    ("owner", "TEXT NOT NULL", True),
    ("ntags", "INTEGER NOT NULL", True),
    ("source", "TEXT", True),  # the original record, as JSON, for --rejects
    *((keep, "INTEGER NOT NULL", True) for keep in (*KEEP, "keep_tags")),
    ("existing_id", "TEXT", False),
    ("changed", "INTEGER", False),
)
_FILLED = [name for name, _type_, filled in STAGED if filled]
STAGING = (
    "DROP TABLE IF EXISTS temp.import_row",
    "DROP TABLE IF EXISTS temp.import_tag",
    "CREATE TEMP TABLE import_row ({})".format(", ".join(f"{name} {type_}" for name, type_, _ in STAGED)),
    # One row per tag of a record: the name as given (a new tag keeps its first
    # spelling) and folded as lower() folds it (which the unique index on lower(tag.name)
    # holds). A record names a tag once, in any case: validation dropped the repeats.
    # folded has no declared type: a comparison with lower(), whose result has no
    # affinity, may then use that index (a TEXT column would make it scan the tags).
    """
    CREATE TEMP TABLE import_tag (
        rownum INTEGER NOT NULL, folded NOT NULL, pos INTEGER NOT NULL, name TEXT NOT NULL,
        PRIMARY KEY (rownum, folded)
    ) WITHOUT ROWID
    """,
)
STAGE_ROW = f"INSERT INTO import_row ({', '.join(_FILLED)}) VALUES ({', '.join('?' * len(_FILLED))})"
STAGE_TAG = "INSERT INTO import_tag (rownum, folded, pos, name) VALUES (?, ?, ?, ?)"

# skip and upsert: the item each row names, if it exists; upsert also asks whether the
# row changes it (a replaced column, or the set of its tags compared folded: as many
# tags, and none the row does not name).
MARK_EXISTING = """
    UPDATE import_row AS s SET existing_id = i.id
    FROM "user" u JOIN item i ON i.owner_id = u.id
    WHERE u.username = s.owner AND i.title = s.title
"""
MARK_CHANGED = """
    UPDATE import_row AS s SET existing_id = i.id,
        changed = {replaced}
            OR (NOT s.keep_tags AND (
                (SELECT count(*) FROM item_tag it WHERE it.item_id = i.id) <> s.ntags
                OR EXISTS (SELECT 1 FROM item_tag it JOIN tag x ON x.id = it.tag_id
                           WHERE it.item_id = i.id
                             AND NOT EXISTS (SELECT 1 FROM import_tag t
                                             WHERE t.rownum = s.rownum AND t.folded = lower(x.name)))))
    FROM "user" u JOIN item i ON i.owner_id = u.id
    WHERE u.username = s.owner AND i.title = s.title
""".format(replaced=" OR ".join(f"(NOT s.keep_{c} AND i.{c} IS NOT s.{c})" for c in ITEM_REPLACED) or "0")
UPDATE_CHANGED = "UPDATE item SET {} FROM import_row s WHERE s.changed AND item.id = s.existing_id".format(
    ", ".join([f"{ITEM_UPDATED} = :now"] + [f"{c} = CASE WHEN s.keep_{c} THEN item.{c} ELSE s.{c} END" for c in ITEM_REPLACED])
)
UNLINK_CHANGED = """
    DELETE FROM item_tag
    WHERE item_id IN (SELECT existing_id FROM import_row WHERE changed AND NOT keep_tags)
"""
INSERT_ITEMS = insert_items(":now") + " {where} ORDER BY s.id"
# The message of the unique index on the item's key, as SQLite words it.
_REPEATED = ", ".join(f"item.{name}" for name in ITEM_KEY)
# The names no tag has yet (in any case), each with its first spelling in input order.
NEW_TAGS = """
    SELECT name FROM (
        SELECT t.name, t.rownum, t.pos,
               row_number() OVER (PARTITION BY t.folded ORDER BY t.rownum, t.pos) AS nth
        FROM import_tag t JOIN import_row s ON s.rownum = t.rownum
        WHERE {written} AND NOT EXISTS (SELECT 1 FROM tag x WHERE lower(x.name) = t.folded)
    ) WHERE nth = 1
    ORDER BY rownum, pos
"""
INSERT_LINKS = """
    INSERT INTO item_tag (item_id, tag_id)
    SELECT {target}, x.id
    FROM import_tag t JOIN import_row s ON s.rownum = t.rownum
    JOIN tag x ON lower(x.name) = t.folded
    WHERE {written}
    ORDER BY 1, 2
"""
# Which staged rows write their tags, per mode: every row; the new ones; the new ones and
# the changed ones whose tags the row gives.
WRITTEN = {
    "insert": "1",
    "skip": "s.existing_id IS NULL",
    "upsert": "(s.existing_id IS NULL OR (s.changed AND NOT s.keep_tags))",
}


def _same(value):
    return value


class SqliteStore:
    """The bulk writes of one command, on the session's own sqlite3 connection."""

    def __init__(self, connection: Connection) -> None:
        self.cursor = connection.connection.driver_connection.cursor()
        # Each table's INSERT, and how each of its values is stored, as the models' own
        # column types say.
        self.inserts: dict[str, str] = {}
        self.convert: dict[str, list[Callable]] = {}
        for kind, columns in COLUMNS.items():
            table = TABLES[kind]
            self.inserts[kind] = f'INSERT INTO "{table.name}" ({", ".join(columns)}) VALUES ({", ".join("?" * len(columns))})'
            processors = [table.c[name].type.bind_processor(connection.dialect) for name in columns]
            self.convert[kind] = [p or _same for p in processors]

    def stored(self, kind: str, column: str) -> Callable:
        """How a value of ``kind``'s ``column`` is stored."""
        return self.convert[kind][COLUMNS[kind].index(column)]

    def row(self, kind: str, values: dict) -> tuple:
        """A row of ``kind`` as stored: every column of the table, in its order."""
        return tuple(f(values[name]) for f, name in zip(self.convert[kind], COLUMNS[kind]))

    def insert(self, kind: str, rows: list[tuple]) -> None:
        """Insert stored rows (``row``) into ``kind``'s table."""
        try:
            self.cursor.executemany(self.inserts[kind], rows)
        except sqlite3.IntegrityError as error:
            # As SQLAlchemy would have raised it: restore names it (two rows, one name).
            raise exc.IntegrityError(self.inserts[kind], None, error) from error

    def exclusive(self, on_notice: Callable[[str], None] | None = None) -> None:
        """``--exclusive`` changes nothing here: SQLite has one writer at a time."""
        return None

    def _exec(self, sql: str, **params) -> int:
        self.cursor.execute(sql, params)
        return self.cursor.rowcount

    # -- the staged import -------------------------------------------------------------------

    @contextmanager
    def staging(self, *, keep_source: bool) -> Iterator[Callable[[object], None]]:
        """Stage each row given to the function yielded, in batches, while the block runs.
        A row has ``line``, ``row`` (its number), the content columns, ``owner``, ``tags``,
        ``source`` and the ``keep_`` flags of a validated import row."""
        for statement in STAGING:
            self.cursor.execute(statement)
        stored_id = self.stored("item", ITEM_ID)
        content = getter(ITEM_CONTENT)
        converters = [self.stored("item", name) for name in ITEM_CONTENT]
        if any(f is not _same for f in converters):
            plain = content
            content = lambda row: tuple(f(v) for f, v in zip(converters, plain(row)))  # noqa: E731
        keeps = getter((*KEEP, "keep_tags"))
        self.rows: list[tuple] = []
        self.tags: list[tuple] = []
        rows, tags = self.rows, self.tags

        def add(row) -> None:
            # The original record is kept only when --rejects may need to write it back.
            source = json.dumps(row.source, ensure_ascii=False) if keep_source else None
            number = row.row
            rows.append((number, row.line, stored_id(new_id()), *content(row), row.owner, len(row.tags), source, *keeps(row)))
            for pos, name in enumerate(row.tags):
                tags.append((number, _folded(name), pos, name))
            if len(rows) >= BATCH:
                self._flush()

        yield add
        self._flush()

    def _flush(self) -> None:
        if self.rows:
            self.cursor.executemany(STAGE_ROW, self.rows)
            self.rows.clear()
        if self.tags:
            self.cursor.executemany(STAGE_TAG, self.tags)
            self.tags.clear()

    def write_staged(self, mode: str) -> tuple[int, int]:
        """Write the staged rows in ``mode`` (insert, skip, upsert); (inserted, updated).
        Raises ``RepeatedRows`` when the unique index refuses the items."""
        # One moment for every row, stored as the models store a timestamp.
        now = self.stored("item", ITEM_CREATED)(utcnow())
        updated = 0
        if mode == "upsert":
            self._exec(MARK_CHANGED)
            updated = self._exec(UPDATE_CHANGED, now=now)
            self._exec(UNLINK_CHANGED)
        elif mode == "skip":
            self._exec(MARK_EXISTING)
        where = "WHERE s.existing_id IS NULL" if mode != "insert" else ""
        try:
            inserted = self._exec(INSERT_ITEMS.format(where=where), now=now)
        except sqlite3.IntegrityError as error:
            # The statement is undone (SQLite's ABORT); the pipeline names the repeats.
            if _REPEATED not in str(error):
                raise
            raise RepeatedRows() from None
        written = WRITTEN[mode]
        names = [name for (name,) in self.cursor.execute(NEW_TAGS.format(written=written)).fetchall()]
        if names:
            self.insert("tag", [self.row("tag", {"id": new_id(), "name": name}) for name in names])
        target = "coalesce(s.existing_id, s.id)" if mode == "upsert" else "s.id"
        self._exec(INSERT_LINKS.format(target=target, written=written))
        self.cursor.execute("DROP TABLE temp.import_row")
        self.cursor.execute("DROP TABLE temp.import_tag")
        return inserted, updated

    # -- restore -----------------------------------------------------------------------------

    def restoring(self) -> SqliteRestore:
        return SqliteRestore(self)


class SqliteRestore:
    """``executemany`` in batches, each value stored as its model column's type stores it.
    The rows come in id order with their own ids, so each table's B-trees grow at their
    ends; items go in before their links, users and tags before the items. Each row is a
    mapping of every column of its table."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.pending: dict[str, list[tuple]] = {kind: [] for kind in COLUMNS}

    def _add(self, kind: str, row: dict) -> None:
        self.pending[kind].append(self.store.row(kind, row))
        if len(self.pending[kind]) >= BATCH:
            self._flush(kind)

    def _flush(self, kind: str) -> None:
        if self.pending[kind]:
            self.store.insert(kind, self.pending[kind])
            self.pending[kind] = []

    def user(self, row: dict) -> None:
        self._add("user", row)

    def tag(self, row: dict) -> None:
        self._flush("user")
        self._add("tag", row)

    def item(self, row: dict, tag_ids: list) -> None:
        self._flush("user")  # parents first, also when the dump has no tags
        self._flush("tag")
        item_id = row[ITEM_ID]
        self.pending["item"].append(self.store.row("item", row))
        self.pending["item_tag"].extend(self.store.row("item_tag", {"item_id": item_id, "tag_id": t}) for t in tag_ids)
        if len(self.pending["item"]) >= BATCH or len(self.pending["item_tag"]) >= BATCH:
            self._flush("item")  # the items before their links
            self._flush("item_tag")

    def finish(self) -> None:
        for kind in ("user", "tag", "item", "item_tag"):
            self._flush(kind)

    def abort(self, error: BaseException) -> None:
        """Nothing is under way between statements; the transaction's rollback suffices."""
