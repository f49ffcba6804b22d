"""How every SQLite connection itemctl opens is set up: the engine's (``core/db.py``) and
the read commands' own (``store/driver.py``)."""

from __future__ import annotations

from itemctl.core.text import unicode_lower


def set_up(dbapi_connection) -> None:
    """Unicode-wide lower(), foreign keys, WAL and full durability; BEGIN is ours."""
    import sqlite3

    dbapi_connection.isolation_level = None
    # SQLite's own lower() folds ASCII only; PostgreSQL's folds every script. The same
    # rule on both: Python's, registered under the same name (it also serves SQLite's
    # expression index on lower(tag.name) and LIKE through lower()).
    dbapi_connection.create_function("lower", 1, unicode_lower, deterministic=True)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        # WAL: readers see the last commit and never wait for a writer, nor a writer for
        # them. The mode is stored in the file, so this converts a database once (and is
        # a no-op afterwards); a file we may not write keeps its mode, and the command's
        # own statements then say what is wrong with it.
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            pass
        # FULL: a COMMIT waits for the WAL to reach the disk, so a committed command
        # survives a power cut (WAL's usual NORMAL may lose the last commits).
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()
