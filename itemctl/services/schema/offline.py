"""``--sql``: the SQL a run would execute, printed by Alembic's offline mode; nothing is run.

The lock and timeout statements come first, as a real run issues them (``lock``).
"""

from __future__ import annotations

import io

from itemctl.services.schema.head import alembic_config, alembic_quietly
from itemctl.services.schema.lock import CHECK_CONNECTION, DEFAULT_LOCK_TIMEOUT, TAKE_LOCK, run_limits


def run_preamble(dialect: str, lock_timeout: float, statement_timeout: float = 0) -> list[str]:
    """The statements a real run issues first in its transaction (PostgreSQL only)."""
    if dialect != "postgresql":
        return []
    return [CHECK_CONNECTION, TAKE_LOCK, *run_limits(lock_timeout, statement_timeout)]


def migration_sql(
    url: str,
    revision: str = "head",
    *,
    current: str | None = None,
    downgrade: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    statement_timeout: float = 0,
) -> str:
    """The SQL ``db migrate`` (or ``db downgrade``) would run from ``current`` (None: the
    base), with the lock and timeout statements of a real run (offline: nothing is run)."""
    from alembic import command

    buffer = io.StringIO()
    config = alembic_config(url=url, buffer=buffer)
    config.attributes["preamble"] = run_preamble(url.split(":", 1)[0].split("+", 1)[0], lock_timeout, statement_timeout)
    with alembic_quietly():
        if downgrade:
            command.downgrade(config, f"{current}:{revision}", sql=True)
        else:
            command.upgrade(config, f"{current}:{revision}" if current else revision, sql=True)
    return buffer.getvalue()
