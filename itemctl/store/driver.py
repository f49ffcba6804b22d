"""The read commands' connection: psycopg or sqlite3 alone, without SQLAlchemy.

``items list``, ``items get``, ``items count`` and ``users whoami`` answer through a
``Reader``: plain SQL, written once for both dialects with ``%(name)s`` parameters, on a
driver connection opened here (``connect``) or taken from a SQLAlchemy session
(``Reader.of``, when the command had to go through the engine: a database to migrate, a
URL only SQLAlchemy reads). The connection is set up as ``core/db.py`` sets up the
engine's: the same timeouts, the same SQLite pragmas and Unicode-wide ``lower()``.

Values cross in the forms SQLAlchemy's types give them, so both routes read and compare
the same: on SQLite a UUID is 32 hex digits and a timestamp naive UTC text
(``2026-12-04 14:53:01.000120``); on PostgreSQL both are native.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from itemctl.core.logging import debug, is_verbose
from itemctl.core.sqlite import set_up

if TYPE_CHECKING:
    from itemctl.core.config import Config

_PARAMETER = re.compile(r"%\((\w+)\)s")


def colon_parameters(sql: str) -> str:
    """``%(name)s`` parameters as ``:name``: SQLite's style, and SQLAlchemy's ``text()``'s."""
    return _PARAMETER.sub(r":\1", sql)


class Reader:
    """A driver connection in one read transaction, for one dialect."""

    def __init__(self, connection: Any, dialect: str, *, owned: bool = True) -> None:
        self.connection = connection
        self.dialect = dialect
        self.owned = owned  # opened here: ended and closed here too

    @classmethod
    def of(cls, sa_connection) -> Reader:
        """The driver connection under a SQLAlchemy connection, in its transaction."""
        return cls(sa_connection.connection.dbapi_connection, sa_connection.dialect.name, owned=False)

    @property
    def postgres(self) -> bool:
        return self.dialect == "postgresql"

    # -- statements ---------------------------------------------------------------------

    def rows(self, sql: str, params: dict | None = None) -> list[tuple]:
        cursor = self._execute(sql, params or {})
        try:
            return cursor.fetchall()
        finally:
            cursor.close()

    def first(self, sql: str, params: dict | None = None) -> tuple | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def _execute(self, sql: str, params: dict):
        if not self.postgres:
            sql = colon_parameters(sql)
        started = time.perf_counter() if is_verbose() else 0.0
        cursor = self.connection.cursor()
        cursor.execute(sql, params)
        if started:
            debug(f"sql: {' '.join(sql.split())} [{(time.perf_counter() - started) * 1000:.1f} ms]")
        return cursor

    # -- values in and out --------------------------------------------------------------

    def id_param(self, value: uuid.UUID | None):
        if value is None or self.postgres:
            return value
        return value.hex

    def time_param(self, value: datetime):
        value = value.astimezone(timezone.utc)
        # As SQLAlchemy stores it: every field zero-padded (strftime drops the year's zeros).
        return value if self.postgres else value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

    def id_value(self, value) -> uuid.UUID | None:
        if value is None or isinstance(value, uuid.UUID):
            return value
        return uuid.UUID(value)

    def time_value(self, value) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    # -- the end ------------------------------------------------------------------------

    def finish(self) -> None:
        """End the read transaction (it changed nothing) and close what was opened here."""
        if not self.owned:
            return
        try:
            if self.postgres:
                self.connection.rollback()
            elif self.connection.in_transaction:
                self.connection.execute("ROLLBACK")
        except Exception:  # a connection already lost: nothing was changed, nothing to end
            pass
        finally:
            self.connection.close()


# -- opening --------------------------------------------------------------------------------

def postgres_arguments(url: str) -> dict[str, str] | None:
    """psycopg.connect's keyword arguments for a ``postgresql+psycopg://`` URL, as the
    psycopg dialect derives them; None for anything it would read otherwise (several
    hosts, an escaped database name), which then goes through the engine."""
    from urllib.parse import parse_qsl

    from itemctl.core.urls import BadURL, parse_url

    try:
        parts = parse_url(url)
    except BadURL:
        return None
    if parts["drivername"] != "postgresql+psycopg" or "%" in (parts["database"] or ""):
        return None
    arguments = {
        "user": parts["username"],
        "password": parts["password"],
        "host": parts["host"],
        "port": str(parts["port"]) if parts["port"] else None,
        "dbname": parts["database"],
    }
    query = parse_qsl(parts["query"], keep_blank_values=True)
    if len({key for key, _ in query}) != len(query):
        return None
    arguments.update(query)
    return {key: value for key, value in arguments.items() if value is not None}


def connect(config: Config) -> Reader | None:
    """A read transaction on the configured database through its driver alone; None
    when only the engine can open it (a file to create or migrate, an unusual URL)."""
    target = config.database
    if target.is_postgres:
        arguments = postgres_arguments(target.url)
        return None if arguments is None else _postgres(arguments, config)
    files = list(target.files())
    if not files or "?" in target.url:
        return None
    import os

    if not os.path.isfile(files[0]):
        return None
    return _sqlite(files[0], config)


def _postgres(arguments: dict[str, str], config: Config) -> Reader:
    import logging

    import psycopg

    # As core/db.py: psycopg's own log lines never reach the user.
    logging.getLogger("psycopg").addHandler(logging.NullHandler())
    # itemctl's own settings win over the URL's, as the engine's connect_args do.
    # No server-side prepared statements: they break behind PgBouncer's transaction mode.
    ours = {"connect_timeout": max(1, round(config.connect_timeout)), "application_name": "itemctl", "prepare_threshold": None}
    connection = psycopg.connect(**{**arguments, **ours})
    reader = Reader(connection, "postgresql")
    try:
        if config.lock_timeout is not None:
            from itemctl.core.timeouts import transaction_settings

            reader.rows(transaction_settings(config.lock_timeout, connection.info.server_version // 10000))
    except BaseException:
        connection.close()
        raise
    return reader


def _sqlite(path: str, config: Config) -> Reader:
    import sqlite3

    timeout = config.lock_timeout if config.lock_timeout is not None else 5.0
    connection = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    try:
        set_up(connection)
        connection.execute("BEGIN DEFERRED")  # a reader: never waits for a writer
    except BaseException:
        connection.close()
        raise
    return Reader(connection, "sqlite")
