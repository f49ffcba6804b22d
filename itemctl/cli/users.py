"""``itemctl users``: list, show, create, update and delete users."""

from __future__ import annotations

import typer

from itemctl.cli.output import OutputOption, emit
from itemctl.cli.runtime import command_session

app = typer.Typer(help="Manage users.", no_args_is_help=True)

USER_COLUMNS = ("id", "username", "email", "is_admin", "created_at", "item_count")


@app.command("whoami")
def whoami(ctx: typer.Context, output: OutputOption = None) -> None:
    """Show the user itemctl acts as (created on first use).

    Example: itemctl --as alice users whoami -o json
    """
    from itemctl.services import users

    with command_session(ctx.obj) as (session, actor):
        record = users.public_user(session=session, user=actor)
    emit(record.model_dump(mode="json"), output, columns=USER_COLUMNS, id_field="username")
