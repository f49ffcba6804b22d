"""``itemctl status``: where the database is, who is acting, and whether all of it is usable.

Every check runs, in order, and each says what it found and the problem it is, if any, with
the exit code that problem has everywhere else: the database (7), the server (7: read-only
or a standby, for commands that write), the role's privileges (7: the database is not
usable as configured), the schema (8). Nothing is written: the actor is looked up, never
created.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, text


@dataclass
class Check:
    name: str
    facts: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None
    exit_code: int = 0

    def fail(self, problem: str, exit_code: int) -> None:
        self.problem, self.exit_code = problem, exit_code


def server(connection: Connection, connected_port: int | None) -> Check:
    """Version; read-only, standby; whether a pooler stands between (its port differs
    from the server's own)."""
    check = Check("server", {"dialect": connection.dialect.name})
    if connection.dialect.name != "postgresql":
        check.facts["version"] = connection.execute(text("SELECT sqlite_version()")).scalar()
        return check
    version, read_only, standby, port = connection.execute(
        text(
            "SELECT current_setting('server_version'), current_setting('default_transaction_read_only') = 'on', "
            "pg_is_in_recovery(), current_setting('port')::int"
        )
    ).one()
    check.facts.update(version=version, read_only=bool(read_only), standby=bool(standby))
    check.facts["pooler"] = connected_port is not None and connected_port != port
    if standby or read_only:
        check.fail(
            "the server is " + ("a standby (in recovery)" if standby else "read-only (default_transaction_read_only)")
            + ": commands that write will fail",
            7,
        )
    return check


def privileges(connection: Connection) -> Check:
    if connection.dialect.name != "postgresql":
        return Check("role", {"name": None, "missing": []})
    from itemctl.services import grants

    found = grants.check(connection)
    check = Check("role", {"name": found.role, "missing": found.missing})
    if found.missing:
        check.fail(
            f"role {found.role!r} lacks what everyday commands need: {', '.join(found.missing)}"
            f" (`itemctl db grants {found.role}` prints the SQL)",
            7,
        )
    return check


def schema_state(connection: Connection) -> Check:
    from itemctl import SCHEMA_HEAD
    from itemctl.services import schema

    from sqlalchemy import exc

    from itemctl.core.errors import INSUFFICIENT_PRIVILEGE, primary_message, sqlstate_of

    try:
        revision = schema.schema_revision(connection)
    except exc.DBAPIError as error:
        if sqlstate_of(error) != INSUFFICIENT_PRIVILEGE:
            raise
        check = Check("schema", {"revision": None, "head": SCHEMA_HEAD, "state": "unreadable"})
        check.fail(f"cannot read the schema revision: {primary_message(error)}", 7)
        return check
    state = "empty" if revision is None else "at head" if revision == SCHEMA_HEAD else "newer" if schema.is_newer(revision) else "behind"
    check = Check("schema", {"revision": revision, "head": SCHEMA_HEAD, "state": state})
    if state != "at head":
        check.fail(
            {
                "empty": "the database has no itemctl schema (run `itemctl db migrate`)",
                "behind": f"the schema is at {revision}, head is {SCHEMA_HEAD} (run `itemctl db migrate`)",
                "newer": f"the schema is at {revision}, newer than this itemctl (head {SCHEMA_HEAD}): upgrade itemctl",
            }[state],
            8,
        )
    return check


def actor(connection: Connection, username: str | None, state: str, *, from_login: bool = False) -> Check:
    """The acting user as a command would resolve it, without creating it; with identity
    from the login, the login's own user (another name is impersonation)."""
    login = connection.execute(text("SELECT session_user")).scalar() if from_login else None
    impersonating = from_login and username is not None and username != login
    username = username or login
    check = Check("actor", {"username": username, "exists": False, "is_admin": False})
    if username is None:
        return check
    from itemctl.models.user import check_username

    try:
        check_username(username)
    except ValueError as error:
        source = "the database login" if from_login and not impersonating else "{actor} or ITEMCTL_USER"
        check.fail(f"{username!r} (from {source}) is not a valid itemctl username: {error}", 6)
        return check
    if state != "at head":
        return check

    def admin(name: str) -> bool | None:
        row = connection.execute(text('SELECT is_admin FROM "user" WHERE username = :name'), {"name": name}).first()
        return None if row is None else bool(row[0])

    found = admin(username)
    if found is not None:
        check.facts.update(exists=True, is_admin=found)
    if impersonating and not admin(login):
        check.fail(f"the login {login!r} is not an admin, so it may not act as {username!r} (ITEMCTL_IDENTITY=database)", 5)
    return check


def gather(engine: Engine, *, username: str | None, connected_port: int | None, from_login: bool = False) -> list[Check]:
    """Every check that needs the database, in one read-only transaction."""
    from itemctl.core.db import reader

    with reader(engine) as connection:
        found = [server(connection, connected_port), privileges(connection)]
        # Last: on PostgreSQL a database never migrated aborts the transaction here.
        checked_schema = schema_state(connection)
        if checked_schema.facts["state"] == "empty" and found[1].facts["name"] is not None:
            found[1].facts["missing"] = None  # nothing to check against yet
        found += [checked_schema, actor(connection, username, checked_schema.facts["state"], from_login=from_login)]
        connection.rollback()
    return found
