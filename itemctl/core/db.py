"""Engine and the one-transaction-per-command session scope."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event, exc
from sqlmodel import Session

from itemctl.core.config import DatabaseTarget
from itemctl.core.errors import DatabaseUnavailable, Interrupted, redact
from itemctl.core.logging import is_verbose, log_statements

# SQLSTATEs that mean "could not talk to the database (any more)": connection
# exceptions, authentication, unknown database, and the server ending the session
# (administrator, crash or shutdown: 57P01-57P03; not 57014, a cancelled statement).
_UNREACHABLE_SQLSTATES = ("08", "28", "3D", "57P01", "57P02", "57P03")


def create_db_engine(target: DatabaseTarget, *, connect_timeout: float = 10) -> Engine:
    """An engine for the target; SQLite gets foreign keys and real transactions."""
    if target.is_postgres:
        engine = create_engine(
            target.url,
            poolclass=_null_pool(),
            connect_args={
                "connect_timeout": max(1, round(connect_timeout)),
                "application_name": "itemctl",
                # Server-side prepared statements break behind PgBouncer in
                # transaction mode; a CLI gains nothing from them anyway.
                "prepare_threshold": None,
            },
        )
    else:
        if target.embedded:
            from pathlib import Path

            Path(target.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(target.url, poolclass=_null_pool())
        _sqlite_transactions(engine)
    if is_verbose():
        log_statements(engine)
    else:
        # psycopg logs, for example, "error ignored terminating Copy" when the server
        # ends a session mid-COPY; the error itself reaches the user as one line.
        logging.getLogger("psycopg").addHandler(logging.NullHandler())
    return engine


def _null_pool():
    from sqlalchemy.pool import NullPool

    return NullPool


def _sqlite_transactions(engine: Engine) -> None:
    """Foreign keys on, and BEGIN emitted by us so DDL is transactional too.

    The recipe from SQLAlchemy's SQLite dialect documentation ("Serializable isolation /
    Savepoints / Transactional DDL").
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, connection_record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN")


def is_unreachable(error: exc.DBAPIError) -> bool:
    """True when the error means the database could not be reached or refused us."""
    sqlstate = getattr(error.orig, "sqlstate", None)
    if error.connection_invalidated:
        return True
    if isinstance(error, exc.OperationalError) and sqlstate is None:
        # psycopg reports refused connections, timeouts, unknown hosts and bad
        # passwords during connect without an SQLSTATE (or with class 08/28).
        return error.orig.__class__.__module__.startswith("psycopg")
    return bool(sqlstate) and sqlstate.startswith(_UNREACHABLE_SQLSTATES)


def unreachable_error(error: exc.DBAPIError, target: DatabaseTarget) -> DatabaseUnavailable:
    from sqlalchemy.engine import make_url

    try:
        where = make_url(target.url).render_as_string(hide_password=True)
    except Exception:
        where = target.source
    reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    return DatabaseUnavailable(
        redact(f"database {where} is unreachable: {reason}"),
        hint=f"database from {target.source}",
    )


def _commit(session: Session) -> None:
    """COMMIT; when the connection drops during it, nobody can say whether it happened."""
    try:
        session.commit()
    except exc.DBAPIError as error:
        if is_unreachable(error):
            raise DatabaseUnavailable(
                "the connection was lost during COMMIT: the change may or may not have been applied",
                hint="check the data before running the command again",
            ) from error
        raise


@contextmanager
def session_scope(engine: Engine, *, rollback: bool = False) -> Iterator[Session]:
    """One transaction for the whole command: commit on success, roll back otherwise.

    ``rollback`` rolls back even on success (dry runs).
    """
    session = Session(engine, expire_on_commit=False)
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
