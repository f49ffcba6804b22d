"""The SQLite loader (the embedded default): staged with executemany, written set-based.

The rows go into temporary tables in batches (one row per record, one per tag of a
record); then items, tags and links are written with INSERT … SELECT from them, and skip
and upsert find the existing items with one UPDATE … FROM: the plan the PostgreSQL loader
follows, in SQLite's SQL. Ids are made on the client, as every id is (``new_id``), when a
row is staged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from itemctl.core.text import fold_case
from itemctl.models import Item, Tag
from itemctl.models.base import new_id, utcnow
from itemctl.services.bulk.loader import BATCH, Loader, RepeatedRows
from itemctl.services.bulk.validation import ValidRow

# A file names few tags many times over: each distinct name is folded once.
_folded = lru_cache(maxsize=4096)(fold_case)

STAGING = (
    "DROP TABLE IF EXISTS temp.import_row",
    "DROP TABLE IF EXISTS temp.import_tag",
    # rownum, the record's number, is the rowid: the rows stay in input order, and a
    # record's tags find it by its key.
    """
    CREATE TEMP TABLE import_row (
        rownum INTEGER PRIMARY KEY, line INTEGER NOT NULL, id TEXT NOT NULL,
        title TEXT NOT NULL, description TEXT, owner TEXT NOT NULL, ntags INTEGER NOT NULL,
        source TEXT, keep_description INTEGER NOT NULL, keep_tags INTEGER NOT NULL,
        existing_id TEXT, changed INTEGER
    )
    """,
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
STAGE_ROW = (
    "INSERT INTO import_row (rownum, line, id, title, description, owner, ntags, source, keep_description, keep_tags) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
STAGE_TAG = "INSERT INTO import_tag (rownum, folded, pos, name) VALUES (?, ?, ?, ?)"

# skip and upsert: the item each row names, if it exists; upsert also asks whether the
# row changes it (its description, or the set of its tags compared folded: as many tags,
# and none the row does not name).
MARK_EXISTING = """
    UPDATE import_row AS s SET existing_id = i.id
    FROM "user" u JOIN item i ON i.owner_id = u.id
    WHERE u.username = s.owner AND i.title = s.title
"""
MARK_CHANGED = """
    UPDATE import_row AS s SET existing_id = i.id,
        changed = (NOT s.keep_description AND i.description IS NOT s.description)
            OR (NOT s.keep_tags AND (
                (SELECT count(*) FROM item_tag it WHERE it.item_id = i.id) <> s.ntags
                OR EXISTS (SELECT 1 FROM item_tag it JOIN tag x ON x.id = it.tag_id
                           WHERE it.item_id = i.id
                             AND NOT EXISTS (SELECT 1 FROM import_tag t
                                             WHERE t.rownum = s.rownum AND t.folded = lower(x.name)))))
    FROM "user" u JOIN item i ON i.owner_id = u.id
    WHERE u.username = s.owner AND i.title = s.title
"""
UPDATE_CHANGED = """
    UPDATE item SET updated_at = :now,
        description = CASE WHEN s.keep_description THEN item.description ELSE s.description END
    FROM import_row s WHERE s.changed AND item.id = s.existing_id
"""
UNLINK_CHANGED = """
    DELETE FROM item_tag
    WHERE item_id IN (SELECT existing_id FROM import_row WHERE changed AND NOT keep_tags)
"""
INSERT_ITEMS = """
    INSERT INTO item (id, title, description, owner_id, created_at, updated_at)
    SELECT s.id, s.title, s.description, u.id, :now, :now
    FROM import_row s JOIN "user" u ON u.username = s.owner
    {where}
    ORDER BY s.id
"""
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


class SqliteLoader(Loader):
    """The embedded default: executemany into temporary tables, then set-based statements."""

    # The unique index on item (owner_id, title) stops an INSERT … SELECT that holds a
    # repeat: a clean load needs no pass looking for them first.
    unique_index_finds_duplicates = True

    @contextmanager
    def loading(self) -> Iterator[None]:
        # The sqlite3 connection under the session: the same transaction.
        self.cursor = self.connection.connection.driver_connection.cursor()
        for statement in STAGING:
            self.cursor.execute(statement)
        dialect = self.connection.dialect
        # How an id is stored, as the models' own column type says.
        self.stored_id = Item.__table__.c.id.type.bind_processor(dialect)
        self.rows: list[tuple] = []
        self.tags: list[tuple] = []
        yield
        self._flush()

    def add(self, row: ValidRow) -> None:
        self.rows.append(
            (
                row.row, row.line, self.stored_id(new_id()), row.title, row.description, row.owner, len(row.tags),
                self._source_json(row), row.keep_description, row.keep_tags,
            )
        )
        for pos, name in enumerate(row.tags):
            self.tags.append((row.row, _folded(name), pos, name))
        if len(self.rows) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            self.cursor.executemany(STAGE_ROW, self.rows)
            self.rows = []
        if self.tags:
            self.cursor.executemany(STAGE_TAG, self.tags)
            self.tags = []

    def _exec(self, sql: str, **params) -> int:
        self.cursor.execute(sql, params)
        return self.cursor.rowcount

    def write(self) -> tuple[int, int]:
        mode = self.options.mode
        dialect = self.connection.dialect
        # One moment for every row, stored as the models store a timestamp.
        now = Item.__table__.c.created_at.type.bind_processor(dialect)(utcnow())
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
            if "item.owner_id, item.title" not in str(error):
                raise
            raise RepeatedRows() from None
        written = WRITTEN[mode]
        self._create_tags(written)
        target = "coalesce(s.existing_id, s.id)" if mode == "upsert" else "s.id"
        self._exec(INSERT_LINKS.format(target=target, written=written))
        self.cursor.execute("DROP TABLE temp.import_row")
        self.cursor.execute("DROP TABLE temp.import_tag")
        return inserted, updated

    def _create_tags(self, written: str) -> None:
        names = [name for (name,) in self.cursor.execute(NEW_TAGS.format(written=written)).fetchall()]
        if names:
            stored_id = Tag.__table__.c.id.type.bind_processor(self.connection.dialect)
            self.cursor.executemany("INSERT INTO tag (id, name) VALUES (?, ?)", [(stored_id(new_id()), n) for n in names])
