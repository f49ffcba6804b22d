"""What an application role needs for everyday commands, on PostgreSQL: granted by
``db grants ROLE`` and checked by ``status``, from this one definition.

Everyday commands (everything but ``db``) read and write users, items, tags and their
links, stage imports in temporary tables, append to the audit trail and read the schema
revision. They never change the schema, and never change or delete an audit entry: the
trail stays append-only for the application. A new table is covered without an edit here:
the tables are read from the models.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

DML = ("SELECT", "INSERT", "UPDATE", "DELETE")
APPEND_ONLY = ("SELECT", "INSERT")
READ_ONLY = ("SELECT",)
VERSION_TABLE = "alembic_version"


def needed() -> list[tuple[str, tuple[str, ...]]]:
    """Each table an everyday command touches, with the privileges it needs there."""
    from sqlmodel import SQLModel

    from itemctl.models import AuditEntry

    import itemctl.models  # noqa: F401 - every table registered on the metadata

    tables = [
        (table.name, APPEND_ONLY if table.name == AuditEntry.__tablename__ else DML)
        for table in SQLModel.metadata.sorted_tables
    ]
    return [*tables, (VERSION_TABLE, READ_ONLY)]


def grant_statements(connection: Connection, role: str) -> list[str]:
    """The SQL that gives ``role`` exactly what everyday commands need in this database and
    its current schema, including tables and sequences a later migration creates (default
    privileges of the role running this, which is the one that migrates)."""
    from psycopg import sql

    database, schema = connection.execute(text("SELECT current_database(), current_schema()")).one()
    raw = connection.connection.driver_connection
    who, db, where = sql.Identifier(role), sql.Identifier(database), sql.Identifier(schema)

    def rendered(statement: sql.Composable) -> str:
        return statement.as_string(raw) + ";"

    statements = [
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(db, who),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(where, who),
    ]
    for table, privileges in needed():
        if not _exists(connection, schema, table):
            continue  # not migrated yet: the default privileges below cover it
        statements.append(
            sql.SQL("GRANT {} ON {}.{} TO {}").format(sql.SQL(", ".join(privileges)), where, sql.Identifier(table), who)
        )
    statements += [
        sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA {} TO {}").format(where, who),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT {} ON TABLES TO {}").format(where, sql.SQL(", ".join(DML)), who),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT USAGE ON SEQUENCES TO {}").format(where, who),
    ]
    return [rendered(statement) for statement in statements]


def _exists(connection: Connection, schema: str, table: str) -> bool:
    qualified = '"' + schema.replace('"', '""') + '"."' + table.replace('"', '""') + '"'
    return connection.execute(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": qualified}).scalar()


def require_owner(connection: Connection, *, to: str = "grant on them", because: str = "its grants would give nothing") -> None:
    """Only the role that owns itemctl's tables may change them: grants and default
    privileges given by another do nothing (PostgreSQL only warns), and a migration would
    fail half-way in. Refused (exit 5) naming the owner; before the first migration,
    the role needs CREATE on the schema."""
    from itemctl.core.errors import PermissionDenied

    owners = connection.execute(
        text(
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname = ANY(:tables) "
            "AND NOT pg_has_role(current_user, c.relowner, 'USAGE')"
        ),
        {"tables": [table for table, _ in needed()]},
    ).scalars().all()
    me = connection.execute(text("SELECT current_user")).scalar()
    if owners:
        raise PermissionDenied(
            f"the database role {me!r} may not do this: it does not own itemctl's tables ({', '.join(sorted(owners))} does), "
            f"and only the owner may {to} ({because})",
            hint="run it as the role that owns and migrates the schema",
        )
    if not connection.execute(text("SELECT has_schema_privilege(current_schema(), 'CREATE')")).scalar():
        schema = connection.execute(text("SELECT current_schema()")).scalar()
        raise PermissionDenied(
            f"the database role {me!r} may not do this: permission denied for schema {schema} (to {to} it needs CREATE there)",
            hint="run it as the role that owns and migrates the schema",
        )


def role_exists(connection: Connection, role: str) -> bool:
    return connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}).first() is not None


@dataclass
class Privileges:
    role: str
    missing: list[str]  # "INSERT on item", "USAGE on schema public", …


def check(connection: Connection) -> Privileges:
    """What the connected role lacks of what everyday commands need (nothing: all good)."""
    role, schema = connection.execute(text("SELECT current_user, current_schema()")).one()
    missing = []
    if not connection.execute(text("SELECT has_schema_privilege(current_schema(), 'USAGE')")).scalar():
        missing.append(f"USAGE on schema {schema}")
    if not connection.execute(text("SELECT has_database_privilege(current_database(), 'TEMPORARY')")).scalar():
        missing.append("TEMPORARY on the database (imports stage their rows in temporary tables)")
    for table, privileges in needed():
        qualified = f'"{schema}"."{table}"'
        if not _exists(connection, schema, table):
            continue  # not migrated yet: the schema check says so
        for privilege in privileges:
            granted = connection.execute(
                text("SELECT has_table_privilege(CAST(:name AS regclass), :privilege)"),
                {"name": qualified, "privilege": privilege},
            ).scalar()
            if not granted:
                missing.append(f"{privilege} on {table}")
    sequences = connection.execute(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'S' "
            "AND NOT CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'USAGE') ELSE true END"
        )
    ).scalars()
    missing += [f"USAGE on sequence {name}" for name in sequences]
    return Privileges(role, missing)
