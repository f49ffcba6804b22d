"""PostgreSQL's timeout settings as statements, shared by the engine (``core/db.py``), the
read commands' driver connection (``store/driver.py``) and the migration lock."""

from __future__ import annotations


def milliseconds(seconds: float) -> str:
    """A PostgreSQL duration setting in whole milliseconds: ``5000ms``."""
    return f"{int(seconds * 1000)}ms"


def set_local_timeout(name: str, seconds: float) -> str:
    """``SET LOCAL lock_timeout = '5000ms'``: a PostgreSQL timeout (``lock_timeout``,
    ``statement_timeout``) in whole milliseconds, for the rest of the transaction only."""
    return f"SET LOCAL {name} = '{milliseconds(seconds)}'"


# The server checks every second that the client is still there (PostgreSQL 14+): a
# command ended by Ctrl-C or kill stops its query and lets go of its locks at once,
# instead of running on until it would have written its answer.
CHECK_CONNECTION = "SET LOCAL client_connection_check_interval = '1s'"


def transaction_settings(lock_timeout: float, server_major: int) -> str:
    """The statement each transaction starts with: the lock timeout and, from PostgreSQL
    14, the connection check, in one round trip (``set_config(…, true)`` is ``SET LOCAL``,
    which PgBouncer's transaction mode requires)."""
    if server_major < 14:
        return f"SELECT set_config('lock_timeout', '{milliseconds(lock_timeout)}', true)"
    return (
        f"SELECT set_config('lock_timeout', '{milliseconds(lock_timeout)}', true), "
        "set_config('client_connection_check_interval', '1s', true)"
    )
