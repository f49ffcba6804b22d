"""``itemctl audit``: read the audit trail (admins only)."""

# No `from __future__ import annotations` here: Typer would evaluate every string
# annotation again when it builds the command tree, which --help pays for on each call.

from typing import Annotated, Optional

import typer

from itemctl.cli.output import OutputOption, emit
from itemctl.cli.runtime import command_session

app = typer.Typer(help="Read the audit trail.", no_args_is_help=True)

AUDIT_COLUMNS = ("id", "at", "actor", "db_role", "action", "target", "details")
AUDIT_TABLE_COLUMNS = ("at", "actor", "db_role", "action", "target", "details")  # -o wide adds the id


@app.command("list")
def list_command(
    ctx: typer.Context,
    actor: Annotated[Optional[str], typer.Option("--actor", metavar="USERNAME", help="Only changes by this actor.")] = None,
    action: Annotated[Optional[str], typer.Option("--action", metavar="ACTION", help="Only this action, e.g. items.import.")] = None,
    since: Annotated[Optional[str], typer.Option("--since", metavar="WHEN", help="Only changes at or after this ISO time, or this long ago (90s, 15m, 24h, 7d, 2w).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many entries.")] = 100,
    output: OutputOption = None,
) -> None:
    """List audit entries, newest first (admins only).

    Example: itemctl --as root audit list --action users.delete -o json
    """
    from itemctl.services import audit
    from itemctl.services.items import parse_timestamp

    after = parse_timestamp(since, "--since")
    with command_session(ctx.obj, writes=False) as (session, user):
        entries = audit.list_entries(session=session, actor=user, by=actor, action=action, since=after, limit=limit)
    emit([e.model_dump(mode="json") for e in entries], output, columns=AUDIT_COLUMNS, table_columns=AUDIT_TABLE_COLUMNS)
