"""Alembic environment for itemctl.

Normally run by ``itemctl db ...``, which opens the connection, takes the migration lock
and passes the connection in ``config.attributes["connection"]`` (Alembic cookbook,
"Sharing a Connection with a Series of Migration Commands and Environments"). Run as plain
``alembic`` from a checkout, it resolves the database the way itemctl does.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel

import itemctl.models  # noqa: F401  (fills SQLModel.metadata)

config = context.config
target_metadata = SQLModel.metadata


def _render_item(type_, obj, autogen_context):
    """Render our column types as plain SQLAlchemy ones, so revisions never import itemctl."""
    from sqlmodel.sql.sqltypes import AutoString

    from itemctl.models.base import UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def _options(dialect_name: str) -> dict:
    return {
        "target_metadata": target_metadata,
        "render_item": _render_item,
        "compare_type": True,
        "render_as_batch": dialect_name == "sqlite",
        "transaction_per_migration": False,
    }


def run_migrations_offline() -> None:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    dialect = url.split(":", 1)[0].split("+", 1)[0]
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **_options("sqlite" if dialect == "sqlite" else "postgresql"),
    )
    with context.begin_transaction():
        # What a real `itemctl db migrate` runs first: the lock and the timeouts.
        for statement in config.attributes.get("preamble") or []:
            context.execute(statement)
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if isinstance(connectable, Connection):
        _run(connectable)
        return
    if connectable is None:  # plain `alembic` from a checkout
        from itemctl.core.config import load_config
        from itemctl.core.db import create_db_engine

        connectable = create_db_engine(load_config().database)
    with connectable.connect() as connection:
        _run(connection)
        connection.commit()


def _run(connection) -> None:
    context.configure(connection=connection, **_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
