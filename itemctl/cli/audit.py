"""``itemctl audit``: read the audit trail (admins only)."""

# No `from __future__ import annotations` here: Typer would evaluate every string
# annotation again when it builds the command tree, which --help pays for on each call.

from typing import Annotated, Optional

import typer

from itemctl.cli.output import OutputOption, emit
from itemctl.cli.runtime import command_session

app = typer.Typer(no_args_is_help=True)  # its help: cli/__init__.py GROUPS

AUDIT_COLUMNS = ("id", "at", "actor", "db_role", "action", "target", "details")
AUDIT_TABLE_COLUMNS = ("at", "actor", "db_role", "action", "target", "details")  # -o wide adds the id


@app.command("list")
def list_command(
    ctx: typer.Context,
    actor: Annotated[Optional[str], typer.Option("--actor", metavar="USERNAME", help="Only changes by this actor.")] = None,
    action: Annotated[Optional[str], typer.Option("--action", metavar="ACTION", help="Only this action, e.g. items.import.")] = None,
    target: Annotated[
        Optional[str], typer.Option("--target", metavar="ID|NAME", help="Only entries naming this item id, username or tag name.")
    ] = None,
    db_role: Annotated[
        Optional[str], typer.Option("--db-role", metavar="ROLE", help="Only changes made through this database role (PostgreSQL).")
    ] = None,
    since: Annotated[Optional[str], typer.Option("--since", metavar="WHEN", help="Only changes at or after this ISO time, or this long ago (90s, 15m, 24h, 7d, 2w).")] = None,
    until: Annotated[Optional[str], typer.Option("--until", metavar="WHEN", help="Only changes at or before this ISO time, or this long ago.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many entries.")] = 100,
    output: OutputOption = None,
) -> None:
    """List audit entries, newest first (admins only).

    \b
    Example: itemctl --as root audit list --action users.delete -o json
    Example: itemctl --as root audit list --target 3f2a9c1b-… --since 2026-12-01 --until 2026-12-02
    Example: itemctl --as root audit list --db-role app_importer --since 24h -o wide
    """
    from itemctl.services import audit
    from itemctl.services.reads import parse_timestamp

    after = parse_timestamp(since, "--since")
    before = parse_timestamp(until, "--until")
    with command_session(ctx.obj, writes=False) as (session, user):
        entries = audit.list_entries(
            session=session, actor=user, by=actor, action=action, target=target, db_role=db_role,
            since=after, until=before, limit=limit,
        )
    emit([e.model_dump(mode="json") for e in entries], output, columns=AUDIT_COLUMNS, table_columns=AUDIT_TABLE_COLUMNS)


@app.command("get")
def get_command(
    ctx: typer.Context,
    entry_id: Annotated[int, typer.Argument(metavar="ENTRY_ID", help="An entry's id (audit list -o id, or -o wide).")],
    output: OutputOption = None,
) -> None:
    """Show one audit entry by its id (admins only).

    Example: itemctl --as root audit get 42 -o json
    """
    from itemctl.services import audit

    with command_session(ctx.obj, writes=False) as (session, user):
        entry = audit.get_entry(session=session, actor=user, entry_id=entry_id)
    emit(entry.model_dump(mode="json"), output, columns=AUDIT_COLUMNS, table_columns=AUDIT_TABLE_COLUMNS)
