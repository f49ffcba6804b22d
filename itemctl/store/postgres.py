"""PostgreSQL's store: every bulk write of users, tags, items and links, by COPY.

- ``Copy``: the one COPY … FROM STDIN in progress on the connection, started, switched and
  ended (or abandoned with the error that stopped it) in one place;
- ``LinkSpool``: links resolved to ids wait in a temporary file until their items are in,
  then follow in one COPY;
- tag resolution: owners and tags looked up by name, new tags created with their first
  spelling (one statement, from a list of names or from the staged rows);
- the staging table (``import_row``), filled by COPY, and the set-based statements that
  write it into the tables in each import mode;
- ``Exclusive``: ``--exclusive``'s lock, index and foreign key rebuild;
- restore's writer: COPY straight into each table, links spooled.

Every statement runs on the psycopg connection under the session: the same transaction.
Column lists come from ``columns``.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql

from itemctl.core.errors import InvalidInput
from itemctl.store.columns import COLUMNS, ITEM_CONTENT, ITEM_ID, ITEM_KEY_CONSTRAINT, ITEM_OWNER, ITEM_REPLACED, ITEM_UPDATED, KEEP
from itemctl.store.columns import getter, insert_items, item_column
from itemctl.store.errors import RepeatedRows

_DIALECT = postgresql.dialect()


class Copy:
    """The COPY … FROM STDIN in progress on a cursor, if any: a connection runs one at a
    time, so naming another table ends the current one first."""

    def __init__(self, cursor) -> None:
        self.cursor = cursor
        self.statement: str | None = None
        self._context = None
        self._copy = None

    def into(self, table: str, columns: Iterable[str]):
        """The COPY into ``table`` (its psycopg ``Copy``: ``write_row``, ``write``)."""
        statement = f"COPY {_DIALECT.identifier_preparer.quote(table)} ({', '.join(columns)}) FROM STDIN"
        if statement != self.statement:
            self.end()
            self._context = self.cursor.copy(statement)
            self._copy = self._context.__enter__()
            self.statement = statement
        return self._copy

    def end(self, error: BaseException | None = None) -> None:
        """End the COPY in progress; with ``error``, so that the server abandons it (and
        the original error, not one from ending, is what the caller raises)."""
        if self._context is None:
            return
        context, self._context, self._copy, self.statement = self._context, None, None, None
        if error is None:
            context.__exit__(None, None, None)
            return
        try:
            context.__exit__(type(error), error, error.__traceback__)
        except Exception:  # noqa: BLE001 - the original error is what the user sees
            pass

    @contextmanager
    def during(self, table: str, columns: Iterable[str]) -> Iterator:
        """The COPY into ``table`` while the block runs; abandoned if the block raises."""
        copy = self.into(table, columns)
        try:
            yield copy
        except BaseException as error:
            self.end(error)
            raise
        self.end()


class LinkSpool:
    """Links, already resolved to ids, wait in a temporary file until every item they
    name is in; then one COPY into item_tag."""

    BLOCK = 1 << 18

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile(prefix="itemctl-links-")  # noqa: SIM115 - closed by close()
        self.pending: list[str] = []

    def add(self, item_id, tag_ids: Iterable) -> None:
        self.pending.extend(f"{item_id}\t{tag_id}\n" for tag_id in tag_ids)
        if len(self.pending) >= 4096:
            self._spill()

    def _spill(self) -> None:
        self.file.write("".join(self.pending).encode())
        self.pending.clear()

    def load(self, copy: Copy) -> None:
        """COPY every spooled link into item_tag (the items must all be in)."""
        self._spill()
        self.file.seek(0)
        with copy.during("item_tag", COLUMNS["item_tag"]) as into:
            while block := self.file.read(self.BLOCK):
                into.write(block)

    def close(self) -> None:
        self.file.close()


# -- tags and owners -----------------------------------------------------------------------

# New tags only: the names no tag has yet (in any case), each with its first spelling
# (the least line, then position); ON CONFLICT leaves a name another session created
# meanwhile to it. {names} yields (name, line, pos).
CREATE_TAGS = """
    INSERT INTO tag (id, name)
    SELECT gen_random_uuid(), first.name FROM (
        SELECT DISTINCT ON (lower(n.name)) n.name FROM ({names}) n
        WHERE NOT EXISTS (SELECT 1 FROM tag x WHERE lower(x.name) = lower(n.name))
        ORDER BY lower(n.name), n.line, n.pos
    ) first
    ON CONFLICT DO NOTHING
"""
GIVEN_NAMES = "SELECT g.name, g.pos AS line, 0 AS pos FROM unnest(%s::text[]) WITH ORDINALITY AS g(name, pos)"
STAGED_NAMES = """
    SELECT t.name, s.line, t.pos
    FROM import_row s
    CROSS JOIN LATERAL unnest(string_to_array(s.tags, ';')) WITH ORDINALITY AS t(name, pos)
    WHERE s.tags IS NOT NULL AND {written}
"""

# -- the staging table ---------------------------------------------------------------------

# (column, type, whether COPY fills it from the input): the row of an import, as staged.
STAGED = (
    ("line", "integer NOT NULL", True),
    ("rownum", "integer NOT NULL", True),
    ("id", "uuid NOT NULL DEFAULT gen_random_uuid()", False),
    *((name, item_column(name, _DIALECT), True) for name in ITEM_CONTENT),
    ("owner", "text NOT NULL", True),
    ("tags", "text", True),  # the names joined by ';'
    ("source", "text", True),  # the original record, as JSON, for --rejects
    *((keep, "boolean NOT NULL", True) for keep in (*KEEP, "keep_tags")),
    ("existing_id", "uuid", False),
    ("changed", "boolean", False),
)
STAGING = "CREATE TEMP TABLE import_row ({}) ON COMMIT DROP".format(", ".join(f"{n} {t}" for n, t, _ in STAGED))
COPIED = tuple(name for name, _type_, copied in STAGED if copied)

# skip and upsert stay safe when runs of one input overlap: an item another run inserted
# since this one looked is left to it (the first run's values are the same input's).
OVERLAP_SAFE = f"ON CONFLICT ON CONSTRAINT {ITEM_KEY_CONSTRAINT} DO NOTHING"
INSERT_ITEMS = insert_items("now()") + " {new_rows}"
# upsert: whether each staged row changes the item it names (a replaced column, or the set
# of its tags compared folded). An item's tags are read by its id first (one index range
# scan), then named: a plan that stays cheap when the statistics are stale, as they are
# right after a large load when autovacuum has not run (or is off).
MARK_CHANGED = """
    UPDATE import_row s SET existing_id = i.id,
        changed = {replaced}
            OR (NOT s.keep_tags
                AND coalesce((SELECT string_agg(lower(t.name), ';' ORDER BY lower(t.name))
                              FROM tag t
                              WHERE t.id = ANY (ARRAY(SELECT it.tag_id FROM item_tag it
                                                      WHERE it.item_id = i.id))), '')
                <> coalesce((SELECT string_agg(lower(x), ';' ORDER BY lower(x))
                             FROM unnest(string_to_array(s.tags, ';')) x), ''))
    FROM "user" u JOIN item i ON i.owner_id = u.id
    WHERE u.username = s.owner AND i.title = s.title
""".format(replaced=" OR ".join(f"(NOT s.keep_{c} AND i.{c} IS DISTINCT FROM s.{c})" for c in ITEM_REPLACED) or "false")
UPDATE_CHANGED = "UPDATE item SET {} FROM import_row s WHERE s.changed AND item.id = s.existing_id".format(
    ", ".join([f"{ITEM_UPDATED} = now()"] + [f"{c} = CASE WHEN s.keep_{c} THEN item.{c} ELSE s.{c} END" for c in ITEM_REPLACED])
)
UNLINK_CHANGED = (
    "DELETE FROM item_tag USING import_row s WHERE s.changed AND NOT s.keep_tags AND item_tag.item_id = s.existing_id"
)
INSERT_LINKS = """
    INSERT INTO item_tag (item_id, tag_id)
    SELECT {target}, x.id
    FROM import_row s
    CROSS JOIN LATERAL unnest(string_to_array(s.tags, ';')) AS t(name)
    JOIN tag x ON lower(x.name) = lower(t.name)
    WHERE s.tags IS NOT NULL AND {written}
"""


class PostgresStore:
    """The bulk writes of one command, on the session's own psycopg connection."""

    def __init__(self, connection: Connection) -> None:
        self.cursor = connection.connection.driver_connection.cursor()
        self.copy = Copy(self.cursor)

    def exclusive(self, on_notice: Callable[[str], None] | None = None) -> Exclusive:
        return Exclusive(self.cursor, on_notice)

    def link_spool(self) -> LinkSpool:
        return LinkSpool()

    def _exec(self, sql: str, params=None) -> int:
        self.cursor.execute(sql, params)
        return self.cursor.rowcount

    # -- owners and tags, by name (the direct load) ------------------------------------------

    def owner_ids(self, usernames: Iterable[str]) -> dict[str, str]:
        """The id of each of these users that exists, by username."""
        self.cursor.execute('SELECT username, id::text FROM "user" WHERE username = ANY(%s)', (list(usernames),))
        return dict(self.cursor.fetchall())

    def tag_ids(self, names: list[str]) -> dict[str, str]:
        """The id of the tag each name names (in any case), by the name as given; the tags
        no name names yet are created first, each with its first spelling in ``names``."""
        self._exec(CREATE_TAGS.format(names=GIVEN_NAMES), (names,))
        self.cursor.execute(
            "SELECT n.name, x.id::text FROM unnest(%s::text[]) AS n(name) JOIN tag x ON lower(x.name) = lower(n.name)",
            (names,),
        )
        return dict(self.cursor.fetchall())

    def _any_new_tag(self, names: set[str]) -> bool:
        if not names:
            return False
        self.cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM unnest(%s::text[]) n(name) "
            "WHERE NOT EXISTS (SELECT 1 FROM tag x WHERE lower(x.name) = lower(n.name)))",
            (sorted(names),),
        )
        return self.cursor.fetchone()[0]

    # -- the direct load: items by COPY as they come, links spooled ------------------------------

    DIRECT = (ITEM_ID, *ITEM_CONTENT, ITEM_OWNER)  # the rest take their defaults
    _content = staticmethod(getter(ITEM_CONTENT))

    def item_writer(self) -> Callable[[str, object, str], None]:
        """Write one item: its id, the row (its content columns), its owner's id. The
        COPY starts (again) here; ``self.copy.end()`` pauses it for a lookup."""
        write_row, content = self.copy.into("item", self.DIRECT).write_row, self._content
        return lambda item_id, row, owner_id: write_row((item_id, *content(row), owner_id))

    # -- the staged import -------------------------------------------------------------------

    @contextmanager
    def staging(self, *, keep_source: bool) -> Iterator[Callable[[object], None]]:
        """COPY each row given to the function yielded into the staging table while the
        block runs. A row has ``line``, ``row`` (its number), the content columns,
        ``owner``, ``tags``, ``source`` and the ``keep_`` flags of a validated import row."""
        self.cursor.execute("DROP TABLE IF EXISTS pg_temp.import_row")
        self.cursor.execute(STAGING)
        # The distinct names seen (bounded by the number of tags, not of rows): when the
        # database knows them all, the pass that creates new tags is skipped.
        self.tag_names: set[str] = set()
        content, keeps, tag_names = self._content, getter((*KEEP, "keep_tags")), self.tag_names

        def source(row) -> str | None:
            # The original record is kept only when --rejects may need to write it back.
            return json.dumps(row.source, ensure_ascii=False) if keep_source else None

        with self.copy.during("import_row", COPIED) as copy:
            write_row = copy.write_row

            def add(row) -> None:
                write_row((row.line, row.row, *content(row), row.owner, ";".join(row.tags) or None, source(row), *keeps(row)))
                tag_names.update(row.tags)

            yield add
        # Statistics, so the checks that follow join sensibly instead of guessing.
        self.cursor.execute("ANALYZE import_row")

    def write_staged(self, mode: str) -> tuple[int, int]:
        """Write the staged rows in ``mode`` (insert, skip, upsert); (inserted, updated).
        Raises ``RepeatedRows`` when the unique index refuses the items."""
        from psycopg.errors import UniqueViolation

        updated = 0
        if mode == "upsert":
            self._exec(MARK_CHANGED)
            updated = self._exec(UPDATE_CHANGED)
            self._exec(UNLINK_CHANGED)
            # A new row is written only if it was inserted here: an overlapping run of
            # the same input may have inserted that item first (ON CONFLICT below).
            new_rows = f"WHERE s.existing_id IS NULL {OVERLAP_SAFE}"
            written = (
                "((s.existing_id IS NULL AND EXISTS (SELECT 1 FROM item i WHERE i.id = s.id))"
                " OR (s.changed AND NOT s.keep_tags))"
            )
        elif mode == "skip":
            new_rows = f"WHERE NOT EXISTS (SELECT 1 FROM item i WHERE i.owner_id = u.id AND i.title = s.title) {OVERLAP_SAFE}"
            written = "EXISTS (SELECT 1 FROM item i WHERE i.id = s.id)"
        else:
            new_rows, written = "", "true"
        self.cursor.execute("SAVEPOINT import_items")
        try:
            inserted = self._exec(INSERT_ITEMS.format(new_rows=new_rows))
        except UniqueViolation:
            self.cursor.execute("ROLLBACK TO SAVEPOINT import_items")
            raise RepeatedRows() from None
        self.cursor.execute("RELEASE SAVEPOINT import_items")
        # New tags only: the names not known yet (in any case) are filtered first, so a
        # load into existing tags sorts nothing; a new name keeps its first spelling.
        if self._any_new_tag(self.tag_names):
            self._exec(CREATE_TAGS.format(names=STAGED_NAMES.format(written=written)))
        target = "coalesce(s.existing_id, s.id)" if mode == "upsert" else "s.id"
        try:
            self._exec(INSERT_LINKS.format(target=target, written=written))
        except UniqueViolation:
            # Repeats within a row are dropped on the client, in Python's case rules; the
            # database's lower() may still fold two of them together (rare letters).
            raise InvalidInput(
                "a row names one tag twice in different case (as the database folds case); nothing was imported"
            ) from None
        self.cursor.execute("DROP TABLE import_row")
        return inserted, updated

    # -- restore -----------------------------------------------------------------------------

    def restoring(self) -> PostgresRestore:
        return PostgresRestore(self)


class PostgresRestore:
    """COPY straight into each table, parents first; an item's links wait in the spool
    until the items are in. Each row is a mapping of every column of its table."""

    def __init__(self, store: PostgresStore) -> None:
        self.copy = store.copy
        self.links = LinkSpool()

    def _write(self, kind: str, row: dict) -> None:
        columns = COLUMNS[kind]
        self.copy.into(kind, columns).write_row(tuple(row[name] for name in columns))

    def user(self, row: dict) -> None:
        self._write("user", row)

    def tag(self, row: dict) -> None:
        self._write("tag", row)

    def item(self, row: dict, tag_ids: list) -> None:
        self._write("item", row)
        self.links.add(row[ITEM_ID], tag_ids)

    def finish(self) -> None:
        self.copy.end()
        self.links.load(self.copy)
        self.links.close()

    def abort(self, error: BaseException) -> None:
        """End a COPY under way with the error, so the connection can roll back."""
        self.links.close()
        self.copy.end(error)


class Exclusive:
    """``--exclusive`` as PostgreSQL's "Populating a Database" recommends, inside the
    transaction: lock item and item_tag, drop their foreign keys and non-unique indexes,
    and after the load re-create the indexes (each in one sort) and re-add the foreign keys
    (each validated in one pass). A failed run rolls all of it back with the transaction,
    so the tables keep every index and constraint exactly as they were. The unique indexes
    stay: they are what finds repeated rows and conflicts.
    """

    TABLES = ("item", "item_tag")
    MAINTENANCE_WORK_MEM = "256MB"

    def __init__(self, cursor, on_notice=None) -> None:
        self.cursor = cursor
        self.notify = on_notice or (lambda message: None)

    def take(self) -> None:
        cursor = self.cursor
        self.notify("{exclusive}: locking tables item and item_tag until the import commits; other sessions wait")
        cursor.execute("LOCK TABLE item, item_tag IN ACCESS EXCLUSIVE MODE")
        cursor.execute(
            """
            SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
            FROM pg_constraint
            WHERE contype = 'f' AND conrelid IN ('item'::regclass, 'item_tag'::regclass)
            ORDER BY conrelid::regclass::text, conname
            """
        )
        self.foreign_keys = cursor.fetchall()
        cursor.execute(
            """
            SELECT c.relname, pg_get_indexdef(i.indexrelid)
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE i.indrelid IN ('item'::regclass, 'item_tag'::regclass)
              AND NOT i.indisunique AND NOT i.indisprimary
              AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
            ORDER BY c.relname
            """
        )
        self.indexes = cursor.fetchall()
        self.notify(
            "{exclusive}: dropped for the load and re-created after it: "
            f"indexes {', '.join(name for name, _ in self.indexes) or '(none)'}; "
            f"foreign keys {', '.join(name for _, name, _ in self.foreign_keys) or '(none)'}"
        )
        for table, name, _definition in self.foreign_keys:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _definition in self.indexes:
            cursor.execute(f'DROP INDEX "{name}"')

    def restore(self) -> dict[str, float]:
        """Re-create the indexes, then the foreign keys; seconds spent on each kind."""
        cursor = self.cursor
        started = time.perf_counter()
        # A larger sort memory for the index builds, for this transaction only.
        cursor.execute(f"SET LOCAL maintenance_work_mem = '{self.MAINTENANCE_WORK_MEM}'")
        for _name, definition in self.indexes:
            cursor.execute(definition)
        indexes = time.perf_counter() - started
        started = time.perf_counter()
        # Re-adding a foreign key validates the whole table in one pass. A violation raises
        # here, and the rollback restores the constraints with everything else.
        for table, name, definition in self.foreign_keys:
            cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        return {"indexes": indexes, "constraints": time.perf_counter() - started}
