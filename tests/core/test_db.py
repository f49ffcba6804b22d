"""The engines itemctl makes: SQLite's journal, durability and transactions."""

from __future__ import annotations


def test_every_sqlite_database_is_wal_with_full_sync_and_foreign_keys(sqlite_engine, tmp_path):
    import sqlite3

    with sqlite_engine.connect() as connection:
        settings = [connection.exec_driver_sql(f"PRAGMA {name}").scalar() for name in ("synchronous", "foreign_keys")]
    assert settings == [2, 1]  # FULL, on
    # The journal mode is the file's own: another program opening it finds WAL too.
    other = sqlite3.connect(tmp_path / "test.db")
    try:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        other.close()


def test_sqlite_readers_begin_deferred_and_writers_immediate(sqlite_engine):
    from sqlalchemy import event

    from itemctl.core.db import begin_writing, reader, session_scope

    statements: list[str] = []

    @event.listens_for(sqlite_engine, "before_cursor_execute")
    def _seen(conn, cursor, statement, *args):
        if statement.startswith("BEGIN"):
            statements.append(statement)

    with reader(sqlite_engine) as connection:
        connection.exec_driver_sql("SELECT 1")
    with session_scope(sqlite_engine, writes=False) as session:
        session.connection().exec_driver_sql("CREATE TEMP TABLE staged (n)")
        begin_writing(session)  # the deferred transaction ends; the next one holds the lock
        session.connection().exec_driver_sql("INSERT INTO staged VALUES (1)")  # the same connection
    with session_scope(sqlite_engine) as session:
        session.connection().exec_driver_sql("SELECT 1")
    assert statements == ["BEGIN DEFERRED", "BEGIN DEFERRED", "BEGIN IMMEDIATE", "BEGIN IMMEDIATE"]
