"""server-side defaults for created_at and updated_at

Another program sharing the database (the web service, psql) can insert a user or an item
without naming its timestamps: the database fills in the current time.

PostgreSQL: ``DEFAULT now()``. SQLite cannot alter a column's default, and rebuilding the
tables (Alembic's batch mode) would drop them with foreign keys on, which cascades: the
default is written into the stored table definition instead, the procedure SQLite
documents for changes that leave the stored rows alone (ALTER TABLE, "making other kinds
of table schema changes"), inside this migration's transaction.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 12:20:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: Union[str, None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

COLUMNS = (("user", "created_at"), ("item", "created_at"), ("item", "updated_at"))
# The same text SQLAlchemy stores for a timestamp on SQLite (UTC, fractional seconds).
SQLITE_NOW = "(strftime('%Y-%m-%d %H:%M:%f', 'now'))"


def _sqlite_definitions(old: str, new: str) -> None:
    connection = op.get_bind()
    version = connection.exec_driver_sql("PRAGMA schema_version").scalar()
    connection.exec_driver_sql("PRAGMA writable_schema = ON")
    for table, column in COLUMNS:
        connection.exec_driver_sql(
            "UPDATE sqlite_master SET sql = replace(sql, ?, ?) WHERE type = 'table' AND name = ?",
            (f"{column} DATETIME{old} NOT NULL", f"{column} DATETIME{new} NOT NULL", table),
        )
    connection.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    connection.exec_driver_sql("PRAGMA writable_schema = OFF")
    problems = connection.exec_driver_sql("PRAGMA integrity_check").scalar()
    if problems != "ok":
        raise RuntimeError(f"the SQLite schema did not take the new defaults: {problems}")


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        if op.get_context().as_sql:
            op.execute("-- SQLite: DEFAULT " + SQLITE_NOW + " written into the table definitions")
            return
        _sqlite_definitions("", f" DEFAULT {SQLITE_NOW}")
        return
    for table, column in COLUMNS:
        op.alter_column(table, column, server_default=sa.text("now()"))


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        if op.get_context().as_sql:
            return
        _sqlite_definitions(f" DEFAULT {SQLITE_NOW}", "")
        return
    for table, column in COLUMNS:
        op.alter_column(table, column, server_default=None)
