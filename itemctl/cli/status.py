"""``itemctl status``: one screen for "where am I and who am I?"."""

# No `from __future__ import annotations` here: Typer would evaluate every string
# annotation again when it builds the command tree, which --help pays for on each call.

import typer

from itemctl.cli.output import OutputFormat, OutputOption, echo_data
from itemctl.cli.runtime import database_errors
from itemctl.cli.wording import worded
from itemctl.core.errors import ItemctlError


def status_command(ctx: typer.Context, output: OutputOption = None) -> None:
    """Show the database and where its setting came from, the environment, the actor, the
    schema, the server and the role's privileges, all at once.

    Needs no actor and writes nothing. Every check is printed; the exit code is 0 when
    all is usable, else that of the first problem (7: the database, the server or the
    role's privileges; 8: the schema). -o json (or ndjson) prints one object.

    \b
    Example: itemctl status
    Example: itemctl status -o json | jq .schema.state
    """
    import sqlite3

    from itemctl import SCHEMA_HEAD
    from itemctl.core.config import DEV_USER, LOCAL
    from itemctl.services import status

    state = ctx.obj
    as_json = output in (OutputFormat.json, OutputFormat.ndjson)
    try:
        config = state.config()
    except ItemctlError as error:
        worded(error)
        report = {"configuration": {"problem": error.message}}
        _finish(report, [("configuration", error.message, error.exit_code)], as_json)
        return
    database = config.database
    url = database.display().rsplit(" (from ", 1)[0]
    report: dict = {
        "database": {"url": url, "source": database.source, "embedded": database.embedded, "problem": None},
        "environment": config.environment,
    }
    from_login = config.identity == "database"
    username = config.user or (DEV_USER if config.environment == LOCAL and not from_login else None)
    if state.absent():  # the embedded default before its first use: created and migrated then
        unusable = _unusable_directory(next(iter(database.files())))
        found = [
            status.Check("actor", {"username": username, "exists": False, "is_admin": False}),
            status.Check("schema", {"revision": None, "head": SCHEMA_HEAD, "state": "empty"}),
            status.Check("server", {"dialect": "sqlite", "version": sqlite3.sqlite_version}),
            status.Check("role", {"name": None, "missing": []}),
        ]
        if unusable:
            report["database"]["problem"] = unusable
            _finish(report, [("database", unusable, 7)], as_json)
            return
    else:
        try:
            with database_errors(state):
                found = status.gather(state.engine(), username=username, connected_port=_port(database), from_login=from_login)
        except ItemctlError as error:
            worded(error)
            report["database"]["problem"] = error.message
            for name in ("actor", "schema", "server", "role"):  # said, not silently left out
                report[name] = {"checked": False, "problem": None}
            _finish(report, [("database", error.message, error.exit_code)], as_json)
            return
    problems = []
    for check in found:
        if database.embedded and check.name == "schema" and check.facts["state"] in ("empty", "behind"):
            check.problem = None  # the embedded default migrates itself on first use
        report[check.name] = {**check.facts, "problem": check.problem}
        if check.problem:
            problems.append((check.name, check.problem, check.exit_code))
    _finish(report, problems, as_json)


def _unusable_directory(path: str) -> str | None:
    """Why the embedded default's file could not be made where it belongs, if it could not."""
    import os

    directory = os.path.dirname(path)
    while directory and not os.path.exists(directory):
        directory = os.path.dirname(directory)
    if directory and not os.path.isdir(directory):
        return f"cannot use the data directory: {directory} is not a directory"
    if directory and not os.access(directory, os.W_OK | os.X_OK):
        return f"cannot use the data directory: {directory} is not writable"
    return None


def _port(database) -> int | None:
    """The port itemctl connects to (a pooler's, when one stands between)."""
    if not database.is_postgres:
        return None
    import os

    from sqlalchemy.engine import make_url

    url = make_url(database.url)
    if url.query.get("host") or url.query.get("port"):
        return None  # several hosts: which one answered is the server's business
    port = str(url.port or os.environ.get("PGPORT") or 5432)
    return int(port) if port.isdigit() else None  # PGPORT=5432,5433: several hosts too


ORDER = ("configuration", "database", "environment", "actor", "schema", "server", "role")


def _finish(report: dict, problems: list[tuple[str, str, int]], as_json: bool) -> None:
    """Print every check, then fail with the first problem's exit code, if any."""
    from itemctl.core.invocation import redact

    report["ok"] = not problems
    from itemctl.cli.wording import option

    for facts in report.values():  # libpq's messages end in a newline
        if isinstance(facts, dict) and isinstance(facts.get("problem"), str):
            facts["problem"] = " ".join(facts["problem"].split()).replace("{actor}", option("actor"))
    problems = [(name, report[name]["problem"] if name in report and isinstance(report[name], dict) and report[name].get("problem") else message, code) for name, message, code in problems]
    if as_json:
        from itemctl.core.sink import to_json

        echo_data(redact(to_json({name: report[name] for name in (*ORDER, "ok") if name in report})), json=True)
    else:
        for name in ORDER:
            if name in report:
                echo_data(redact(f"{name + ':':13} {_describe(name, report[name])}"))
                if isinstance(report[name], dict) and report[name].get("problem"):
                    echo_data(redact(f"{'':13} problem: {report[name]['problem']}"))
        echo_data(redact(f"{'status:':13} {'ok' if not problems else 'not usable: ' + problems[0][1]}"))
    if problems:
        name, message, code = problems[0]
        error = ItemctlError(f"{name}: {message}")
        error.exit_code = code
        raise error


def _describe(name: str, facts) -> str:
    if isinstance(facts, dict) and facts.get("checked") is False:
        return "not checked (the database did not answer)"
    if name == "configuration":
        return "refused"
    if name == "environment":
        return str(facts)
    if name == "database":
        if facts["url"] is None:
            return "not configured"
        return f"{facts['url']} (from {facts['source']})"
    if name == "actor":
        if facts["username"] is None:
            return "none (give --as or ITEMCTL_USER)"
        exists = "exists" if facts["exists"] else "not created yet (the first command that changes data creates it)"
        return f"{facts['username']}: {exists}; {'an admin' if facts['is_admin'] else 'not an admin'}"
    if name == "schema":
        return f"{facts['revision'] or 'no revision'} ({facts['state']}; head {facts['head']})"
    if name == "server":
        if facts["dialect"] != "postgresql":
            return f"SQLite {facts['version']} (embedded file)"
        mode = "standby" if facts["standby"] else "read-only" if facts["read_only"] else "read-write primary"
        return f"PostgreSQL {facts['version']}, {mode}" + (", behind a pooler (PgBouncer?)" if facts["pooler"] else "")
    if name == "role":
        if facts["name"] is None:
            return "none (SQLite has no roles)"
        if facts.get("missing") is None:
            return f"{facts['name']}: not checked (no itemctl tables yet)"
        return f"{facts['name']}: " + ("every privilege everyday commands need" if not facts["missing"] else f"lacks {len(facts['missing'])} privilege(s)")
    return str(facts)
