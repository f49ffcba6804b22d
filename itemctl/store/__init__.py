"""The stores: one per dialect, each the one place where SQL writes users, tags, items and
their links in bulk. ``items import`` (staged and direct) and ``db restore`` write through
them; single-row commands go through the ORM.

- ``columns``: the column lists, read from the models' table metadata;
- ``postgres``: COPY (started, switched and ended in one place), the link spool, tag
  resolution, the staging table and its set-based writes, ``--exclusive``'s rebuild;
- ``sqlite``: ``executemany`` in batches and ``INSERT … SELECT``: each table's INSERT,
  the staging tables and their set-based writes;
- ``errors``: what a store raises that its callers act on;
- ``driver``: the read commands' connection, psycopg or sqlite3 alone (no SQLAlchemy),
  and the forms values take on each dialect.

Arrows point one way: services → store → models → core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from itemctl.store.errors import RepeatedRows

if TYPE_CHECKING:
    from sqlalchemy import Connection


def store_for(connection: Connection):
    """The store of the connection's dialect, on its own driver connection (the session's
    transaction)."""
    if connection.dialect.name == "postgresql":
        from itemctl.store.postgres import PostgresStore

        return PostgresStore(connection)
    from itemctl.store.sqlite import SqliteStore

    return SqliteStore(connection)


__all__ = ["RepeatedRows", "store_for"]
