"""The destructive guard: a run that loses a table or column is refused unless allowed.

Judged by the effect, not the wording: the catalog is read before and after, inside the
run's transaction, so a drop made by ``op.drop_column``, raw SQL or a SQLite batch rebuild
that loses a column looks the same, and the refusal rolls back everything the run did.
"""

from __future__ import annotations

from sqlalchemy import Connection

from itemctl.core.errors import SchemaError


def schema_columns(connection: Connection) -> dict[str, set[str]]:
    """Every table of the schema and its columns, read from the catalog."""
    if connection.dialect.name == "postgresql":
        rows = connection.exec_driver_sql(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        ).all()
    else:
        tables = [
            name
            for (name,) in connection.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
            )
        ]
        rows = [(table, info[1]) for table in tables for info in connection.exec_driver_sql(f'PRAGMA table_info("{table}")')]
    columns: dict[str, set[str]] = {}
    for table, column in rows:
        columns.setdefault(table, set()).add(column)
    return columns


def lost_between(before: dict[str, set[str]], after: dict[str, set[str]]) -> list[str]:
    """The tables and columns that ``before`` had and ``after`` lacks, in words."""
    lost = []
    for table in sorted(before):
        if table == "alembic_version":
            continue
        if table not in after:
            lost.append(f"drop table {table}")
        else:
            lost.extend(f"drop column {table}.{column}" for column in sorted(before[table] - after[table]))
    return lost


def refusal(drops: list[str]) -> SchemaError:
    """The error of a run that would lose ``drops`` without --allow-destructive."""
    return SchemaError(
        f"migration refused: it would {', '.join(drops)}; the schema is unchanged",
        hint="review it, then rerun with {allow_destructive}",
        fields=("allow_destructive",),
    )
