"""The PostgreSQL loader: COPY into a temporary table, then set-based statements.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from itemctl.core.errors import InvalidInput
from itemctl.services.bulk.loader import Loader, RepeatedRows
from itemctl.services.bulk.validation import ValidRow

# skip and upsert stay safe when runs of one input overlap: an item another run inserted
# since this one looked is left to it (the first run's values are the same input's).
OVERLAP_SAFE = "ON CONFLICT ON CONSTRAINT uq_item_owner_id_title DO NOTHING"


class PostgresLoader(Loader):
    """COPY into a temporary table, then set-based statements."""

    unique_index_finds_duplicates = True

    STAGING = """
        CREATE TEMP TABLE import_row (
            line integer NOT NULL,
            rownum integer NOT NULL,
            id uuid NOT NULL DEFAULT gen_random_uuid(),
            title text NOT NULL,
            description text,
            owner text NOT NULL,
            tags text,
            source text,
            keep_description boolean NOT NULL,
            keep_tags boolean NOT NULL,
            existing_id uuid,
            changed boolean
        ) ON COMMIT DROP
    """

    @contextmanager
    def loading(self) -> Iterator[None]:
        # The psycopg connection under the session: the same transaction.
        self.cursor = self.connection.connection.driver_connection.cursor()
        self.exclusive = Exclusive(self.cursor, self.options.on_notice) if self.options.exclusive else None
        if self.exclusive:
            self.exclusive.take()
        self.cursor.execute("DROP TABLE IF EXISTS pg_temp.import_row")
        self.cursor.execute(self.STAGING)
        self.tag_names: set[str] = set()
        columns = "line, rownum, title, description, owner, tags, source, keep_description, keep_tags"
        with self.cursor.copy(f"COPY import_row ({columns}) FROM STDIN") as self.copy:
            yield
        # Statistics, so the checks below join sensibly instead of guessing.
        self.cursor.execute("ANALYZE import_row")

    def add(self, row: ValidRow) -> None:
        self.copy.write_row(
            (
                row.line, row.row, row.title, row.description, row.owner, ";".join(row.tags) or None,
                self._source_json(row), row.keep_description, row.keep_tags,
            )
        )
        # The distinct names seen (bounded by the number of tags, not of rows): when the
        # database knows them all, the pass that creates new tags is skipped.
        self.tag_names.update(row.tags)

    def _exec(self, sql: str) -> int:
        self.cursor.execute(sql)
        return self.cursor.rowcount

    def write(self) -> tuple[int, int]:
        from psycopg.errors import UniqueViolation

        mode = self.options.mode
        updated = 0
        if mode == "upsert":
            # An item's tags are read by its id first (one index range scan), then named:
            # a plan that stays cheap when the statistics are stale, as they are right
            # after a large load when autovacuum has not run (or is off).
            self._exec(
                """
                UPDATE import_row s SET existing_id = i.id,
                    changed = (NOT s.keep_description AND i.description IS DISTINCT FROM s.description)
                        OR (NOT s.keep_tags
                            AND coalesce((SELECT string_agg(lower(t.name), ';' ORDER BY lower(t.name))
                                          FROM tag t
                                          WHERE t.id = ANY (ARRAY(SELECT it.tag_id FROM item_tag it
                                                                  WHERE it.item_id = i.id))), '')
                            <> coalesce((SELECT string_agg(lower(x), ';' ORDER BY lower(x))
                                         FROM unnest(string_to_array(s.tags, ';')) x), ''))
                FROM "user" u JOIN item i ON i.owner_id = u.id
                WHERE u.username = s.owner AND i.title = s.title
                """
            )
            updated = self._exec(
                """
                UPDATE item SET updated_at = now(),
                    description = CASE WHEN s.keep_description THEN item.description ELSE s.description END
                FROM import_row s WHERE s.changed AND item.id = s.existing_id
                """
            )
            self._exec(
                "DELETE FROM item_tag USING import_row s "
                "WHERE s.changed AND NOT s.keep_tags AND item_tag.item_id = s.existing_id"
            )
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
            inserted = self._exec(
                f"""
                INSERT INTO item (id, title, description, owner_id, created_at, updated_at)
                SELECT s.id, s.title, s.description, u.id, now(), now()
                FROM import_row s JOIN "user" u ON u.username = s.owner
                {new_rows}
                """
            )
        except UniqueViolation:
            self.cursor.execute("ROLLBACK TO SAVEPOINT import_items")
            raise RepeatedRows() from None
        self.cursor.execute("RELEASE SAVEPOINT import_items")
        # New tags only: the names not known yet (in any case) are filtered first, so a
        # load into existing tags sorts nothing; a new name keeps its first spelling.
        if self._any_new_tag():
            self._create_tags(written)
        target = "coalesce(s.existing_id, s.id)" if mode == "upsert" else "s.id"
        try:
            self._exec(
                f"""
                INSERT INTO item_tag (item_id, tag_id)
                SELECT {target}, x.id
                FROM import_row s
                CROSS JOIN LATERAL unnest(string_to_array(s.tags, ';')) AS t(name)
                JOIN tag x ON lower(x.name) = lower(t.name)
                WHERE s.tags IS NOT NULL AND {written}
                """
            )
        except UniqueViolation:
            # Repeats within a row are dropped on the client, in Python's case rules; the
            # database's lower() may still fold two of them together (rare letters).
            raise InvalidInput(
                "a row names one tag twice in different case (as the database folds case); nothing was imported"
            ) from None
        if self.exclusive:
            self.exclusive.restore()
        self.cursor.execute("DROP TABLE import_row")
        return inserted, updated

    def _any_new_tag(self) -> bool:
        if not self.tag_names:
            return False
        self.cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM unnest(%s::text[]) n(name) "
            "WHERE NOT EXISTS (SELECT 1 FROM tag x WHERE lower(x.name) = lower(n.name)))",
            (sorted(self.tag_names),),
        )
        return self.cursor.fetchone()[0]

    def _create_tags(self, written: str) -> None:
        self._exec(
            f"""
            INSERT INTO tag (id, name)
            SELECT gen_random_uuid(), first.name FROM (
                SELECT DISTINCT ON (lower(n.name)) n.name FROM (
                    SELECT t.name, s.line, t.pos
                    FROM import_row s
                    CROSS JOIN LATERAL unnest(string_to_array(s.tags, ';')) WITH ORDINALITY AS t(name, pos)
                    WHERE s.tags IS NOT NULL AND {written}
                ) n
                WHERE NOT EXISTS (SELECT 1 FROM tag x WHERE lower(x.name) = lower(n.name))
                ORDER BY lower(n.name), n.line, n.pos
            ) first
            ON CONFLICT DO NOTHING
            """
        )


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
        self.notify("--exclusive: locking tables item and item_tag until the import commits; other sessions wait")
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
            "--exclusive: dropped for the load and re-created after it: "
            f"indexes {', '.join(name for name, _ in self.indexes) or '(none)'}; "
            f"foreign keys {', '.join(name for _, name, _ in self.foreign_keys) or '(none)'}"
        )
        for table, name, _definition in self.foreign_keys:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _definition in self.indexes:
            cursor.execute(f'DROP INDEX "{name}"')

    def restore(self) -> dict[str, float]:
        """Re-create the indexes, then the foreign keys; seconds spent on each kind."""
        import time

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
