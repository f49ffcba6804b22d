"""The migration lock: one run at a time, and who holds it when we must wait.

``itemctl db migrate`` takes ``pg_advisory_xact_lock`` inside the very transaction that
applies the migrations. Concurrent runs wait for it and then find nothing to do; the lock
is released by COMMIT or ROLLBACK, so it dies with its holder (a killed process's
connection is rolled back by the server) and, being transaction-scoped, it works behind
PgBouncer in transaction mode where a session-level lock would not.

The statements a run issues before its first migration are written once, here: run by
``lock_and_limit`` and printed for ``--sql`` by ``offline.run_preamble``.
"""

from __future__ import annotations

from sqlalchemy import Connection, exc, text

from itemctl.core.timeouts import CHECK_CONNECTION, set_local_timeout
from itemctl.core.errors import LOCK_NOT_AVAILABLE, ConflictError, sqlstate_of
from itemctl.services.common import Notify, quiet

# "itemctl!" as a big-endian 64-bit integer: the key of the migration advisory lock.
MIGRATION_LOCK_KEY = int.from_bytes(b"itemctl!", "big")
DEFAULT_LOCK_TIMEOUT = 5.0
DEFAULT_WAIT = 600.0

TRY_LOCK = f"SELECT pg_try_advisory_xact_lock({MIGRATION_LOCK_KEY})"
TAKE_LOCK = f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"


def run_limits(lock_timeout: float, statement_timeout: float = 0) -> list[str]:
    """The timeouts a run sets once it holds the lock (statement_timeout 0: no limit)."""
    limits = [set_local_timeout("lock_timeout", lock_timeout)]
    if statement_timeout:
        limits.append(set_local_timeout("statement_timeout", statement_timeout))
    return limits


def lock_and_limit(
    connection: Connection,
    lock_timeout: float,
    statement_timeout: float = 0,
    *,
    wait: float = DEFAULT_WAIT,
    on_notice: Notify = quiet,
) -> None:
    """Take the migration lock, then bound every later statement of the transaction.

    All settings are SET LOCAL: they end with the transaction, as PgBouncer's
    transaction mode requires.
    """
    if connection.dialect.name != "postgresql":
        return
    if connection.dialect.server_version_info >= (14,):
        # A killed client's backend notices within a second and rolls back, releasing
        # the lock, even in the middle of a long statement.
        connection.exec_driver_sql(CHECK_CONNECTION)
    _take_migration_lock(connection, wait, on_notice)
    # Never queue behind an application's lock for longer than lock_timeout.
    for statement in run_limits(lock_timeout, statement_timeout):
        connection.exec_driver_sql(statement)


def _take_migration_lock(connection: Connection, wait: float, on_notice: Notify) -> None:
    """The advisory lock: at once when free; else say who holds it and wait at most ``wait``."""
    if connection.exec_driver_sql(TRY_LOCK).scalar():
        return
    holder = _advisory_holder(connection)
    on_notice(f"waiting for another `itemctl db migrate` to finish ({holder}); at most {wait:g} s")
    # At least a millisecond: lock_timeout 0 would wait for ever.
    connection.exec_driver_sql(set_local_timeout("lock_timeout", max(wait, 0.001)))
    try:
        connection.exec_driver_sql(TAKE_LOCK)
    except exc.DBAPIError as error:
        if not is_lock_timeout(error):
            raise
        raise ConflictError(
            f"gave up after {wait:g} s waiting for another `itemctl db migrate` ({holder}); nothing was changed",
            hint="let it finish, or raise {wait}",
            fields=("wait",),
        ) from None


def _advisory_holder(connection: Connection) -> str:
    row = connection.execute(
        text(
            """
            SELECT a.pid, a.usename, a.application_name, extract(epoch FROM now() - a.xact_start)::int
            FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.classid = :high AND l.objid = :low AND l.objsubid = 1
            LIMIT 1
            """
        ),
        {"high": MIGRATION_LOCK_KEY >> 32, "low": MIGRATION_LOCK_KEY & 0xFFFFFFFF},
    ).first()
    if row is None:
        return "holder unknown"
    pid, role, application, seconds = row
    running = "its time running is hidden: seeing it needs pg_read_all_stats" if seconds is None else f"running for {seconds} s"
    return f"pid {pid}, role {role}, application_name {application or '(none)'!r}, {running}"


def is_lock_timeout(error: exc.DBAPIError) -> bool:
    """A wait for a lock ran out (lock_timeout)."""
    return sqlstate_of(error) == LOCK_NOT_AVAILABLE
