"""Engine and the one-transaction-per-command session scope."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlmodel import Session

from itemctl.core.config import DatabaseTarget
from itemctl.core.errors import DatabaseUnavailable, Interrupted, is_unreachable
from itemctl.core.timeouts import transaction_settings
from itemctl.core.logging import is_verbose, log_statements

def create_db_engine(
    target: DatabaseTarget, *, connect_timeout: float = 10, lock_timeout: float | None = None
) -> Engine:
    """An engine for the target; SQLite gets foreign keys and real transactions.

    ``lock_timeout`` bounds every wait for a lock another session holds: on PostgreSQL
    ``SET LOCAL lock_timeout`` at the start of each transaction (a SET LOCAL lives as long
    as the transaction, as PgBouncer's transaction mode requires); on SQLite the busy
    timeout of the database file. None: wait as long as the server lets us.
    """
    if target.is_postgres:
        engine = create_engine(
            target.url,
            poolclass=_null_pool(),
            hide_parameters=True,
            connect_args={
                "connect_timeout": max(1, round(connect_timeout)),
                "application_name": "itemctl",
                # Server-side prepared statements break behind PgBouncer in
                # transaction mode; a CLI gains nothing from them anyway.
                "prepare_threshold": None,
            },
        )
        if lock_timeout is not None:
            _postgres_lock_timeout(engine, lock_timeout)
    else:
        if target.embedded:
            _make_data_dir(target)
        engine = create_engine(
            target.url,
            poolclass=_null_pool(),
            hide_parameters=True,
            connect_args={"timeout": lock_timeout if lock_timeout is not None else 5.0},
        )
        _sqlite_transactions(engine)
    if is_verbose():
        log_statements(engine)
    else:
        # psycopg logs, for example, "error ignored terminating Copy" when the server
        # ends a session mid-COPY; the error itself reaches the user as one line.
        logging.getLogger("psycopg").addHandler(logging.NullHandler())
    return engine


def _make_data_dir(target: DatabaseTarget) -> None:
    from pathlib import Path

    directory = Path(target.url.removeprefix("sqlite:///")).parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatabaseUnavailable(
            f"cannot use the data directory {directory}: {error.strerror}",
            hint="set ITEMCTL_DATA_DIR to a writable directory, or configure a database",
        ) from None


def _postgres_lock_timeout(engine: Engine, seconds: float) -> None:
    """Each transaction starts with the lock timeout and the connection check."""

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        major = (conn.dialect.server_version_info or (0,))[0]
        conn.exec_driver_sql(transaction_settings(seconds, major))


def lock_holders(engine: Engine) -> str | None:
    """Who is probably holding the lock we gave up on, in words; None if nobody is seen.

    The wait is over when we ask, so ``pg_blocking_pids()`` of our own session has
    nothing left to say; instead, the sessions of this database that hold a lock in an
    open transaction, strongest lock on one of our tables first, then the oldest.
    """
    if engine.dialect.name != "postgresql":
        return None
    # pg_locks shows every session's locks to every role; pg_stat_activity shows other
    # roles' sessions by pid, role and application_name, and hides their transaction's
    # start unless the asking role has pg_read_all_stats.
    query = """
        SELECT a.pid, a.usename, a.application_name, extract(epoch FROM now() - a.xact_start)::int
        FROM pg_stat_activity a
        WHERE a.pid <> pg_backend_pid() AND a.datname = current_database()
          AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.granted
                      AND l.mode NOT IN ('AccessShareLock'))
        ORDER BY (SELECT max(CASE l.mode WHEN 'AccessExclusiveLock' THEN 3 WHEN 'ExclusiveLock' THEN 2
                                         WHEN 'ShareRowExclusiveLock' THEN 2 WHEN 'ShareLock' THEN 2 ELSE 1 END)
                  FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                  WHERE l.pid = a.pid AND l.granted
                    AND c.relname IN ('item', 'item_tag', 'tag', 'user', 'audit_log', 'alembic_version')) DESC NULLS LAST,
                 a.xact_start NULLS LAST
        LIMIT 1
    """
    try:
        with engine.connect() as connection:
            row = connection.exec_driver_sql(query).first()
    except exc.DBAPIError:
        return None
    if row is None:
        return None
    pid, role, application, seconds = row
    if seconds is None:
        age = "its time in the transaction is hidden: seeing it needs pg_read_all_stats"
    else:
        age = f"in its transaction for {seconds} s"
    return f"pid {pid}, role {role} (application_name {application or '(none)'!r}, {age})"


def _null_pool():
    from sqlalchemy.pool import NullPool

    return NullPool


# The execution option that says how a transaction on SQLite begins (see below).
SQLITE_BEGIN = "itemctl_sqlite_begin"


def _sqlite_transactions(engine: Engine) -> None:
    """WAL, full durability, foreign keys on, and BEGIN emitted by us so DDL is
    transactional too.

    BEGIN is ours as in the recipe from SQLAlchemy's SQLite dialect documentation
    ("Serializable isolation / Savepoints / Transactional DDL"); how it begins is chosen
    per transaction (``SQLITE_BEGIN``), see ``_on_begin``.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, connection_record):
        from itemctl.core.sqlite import set_up

        set_up(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # IMMEDIATE (the default) takes the write lock at BEGIN, waiting for another
        # writer up to the busy timeout (--lock-timeout). It is the only way a writer can
        # wait: a DEFERRED transaction that has read and then writes asks for the lock
        # without the busy handler, and when another connection committed since it read
        # it gets SQLITE_BUSY(_SNAPSHOT) at once, whatever the timeout. So a writing
        # command begins IMMEDIATE, and an import begins it only after its input is
        # staged (``begin_writing``). DEFERRED is for commands that only read: in WAL
        # they take no lock at all and never wait.
        conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get(SQLITE_BEGIN, 'IMMEDIATE')}")


def reader(engine: Engine) -> Connection:
    """A connection for reading only: on SQLite its transactions begin DEFERRED, so it
    never waits for a writer (use it as a context manager, as ``engine.connect()``)."""
    return engine.connect().execution_options(**{SQLITE_BEGIN: "DEFERRED"})


def begin_writing(session: Session) -> None:
    """End a SQLite session's deferred transaction, and begin the next one IMMEDIATE:
    the write lock, waited for up to the busy timeout.

    For a command that reads (and stages into temporary tables) before it writes: the
    deferred transaction must have written nothing to the database itself, which this
    COMMIT only ends. Its temporary tables stay (they belong to the connection, which the
    session keeps, see ``session_scope``). A no-op on PostgreSQL, where row locks are
    taken by the writes themselves.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite" or connection.get_execution_options().get(SQLITE_BEGIN) != "DEFERRED":
        return
    session.commit()
    connection.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
    session.connection()  # BEGIN IMMEDIATE, now


def _commit(session: Session) -> None:
    """COMMIT; when the connection drops during it, nobody can say whether it happened.
    The invocation knows, meanwhile, that a COMMIT is under way, and then whether it
    committed a change."""
    from itemctl.core.invocation import current

    invocation = current()
    invocation.committing = True
    try:
        session.commit()
        invocation.committed = invocation.committed or session.info.get("writes", False)
    except exc.DBAPIError as error:
        if is_unreachable(error):
            raise DatabaseUnavailable(
                "the connection was lost during COMMIT: the change may or may not have been applied",
                hint="check the data before running the command again",
            ) from error
        raise
    finally:
        invocation.committing = False


@contextmanager
def session_scope(engine: Engine, *, rollback: bool = False, writes: bool = True) -> Iterator[Session]:
    """One transaction for the whole command: commit on success, roll back otherwise.

    ``rollback`` rolls back even on success (dry runs). On SQLite, ``writes`` False
    begins the transaction DEFERRED (a reader that never waits) and True IMMEDIATE;
    ``begin_writing`` turns the first into the second. The session keeps one connection
    for the whole command, so temporary tables outlive that change.
    """
    connection = None
    if engine.dialect.name == "sqlite":
        connection = engine.connect()
        connection.execution_options(**{SQLITE_BEGIN: "IMMEDIATE" if writes else "DEFERRED"})
    session = Session(connection if connection is not None else engine, expire_on_commit=False)
    try:
        yield session
        if rollback:
            session.rollback()
        else:
            _commit(session)
    except KeyboardInterrupt:
        session.rollback()
        raise Interrupted("interrupted; nothing was changed") from None
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        if connection is not None:
            connection.close()
