"""``itemctl users``: list, show, create, update and delete users."""

# No `from __future__ import annotations` here: Typer would evaluate every string
# annotation again when it builds the command tree, which --help pays for on each call.

from typing import Annotated, Optional

import typer

from itemctl.cli.completion import complete_usernames
from itemctl.cli.output import OutputOption, emit
from itemctl.cli.prompts import confirm, must_ask
from itemctl.cli.runtime import command_session, read_session
from itemctl.core.logging import notice

app = typer.Typer(no_args_is_help=True)  # its help: cli/__init__.py GROUPS

USER_COLUMNS = ("id", "username", "email", "is_admin", "created_at", "item_count")
USER_TABLE_COLUMNS = ("username", "email", "is_admin", "item_count", "created_at")
UsernameArgument = Annotated[
    str, typer.Argument(metavar="USERNAME", help="Letters, digits and . _ @ -", autocompletion=complete_usernames)
]


def _emit_users(records, output) -> None:
    emit(records, output, columns=USER_COLUMNS, id_field="username", table_columns=USER_TABLE_COLUMNS)


@app.command("list")
def list_command(
    ctx: typer.Context,
    admins: Annotated[bool, typer.Option("--admins", help="Only admins.")] = False,
    output: OutputOption = None,
) -> None:
    """List users with how many items each owns.

    Example: itemctl users list --admins -o id
    """
    from itemctl.services import users

    with command_session(ctx.obj, writes=False) as (session, _actor):
        records = users.list_users(session=session, admins_only=admins)
    _emit_users([u.model_dump(mode="json") for u in records], output)


@app.command("get")
def get_command(ctx: typer.Context, username: UsernameArgument, output: OutputOption = None) -> None:
    """Show one user.

    Example: itemctl users get alice -o json
    """
    from itemctl.services import users

    with command_session(ctx.obj, writes=False) as (session, _actor):
        user = users.public_user(session=session, user=users.get_user(session=session, username=username))
    _emit_users(user.model_dump(mode="json"), output)


@app.command("whoami")
def whoami_command(ctx: typer.Context, output: OutputOption = None) -> None:
    """Show the user itemctl acts as (created by the first command that changes data).

    Example: itemctl --as alice users whoami -o json
    """
    from itemctl.services import reads

    with read_session(ctx.obj) as (db, actor):
        record = reads.whoami(db=db, actor=actor)
    if not actor.stored:
        notice(f"user {actor.username!r} does not exist yet: the first command that changes data creates it")
    _emit_users(record, output)


@app.command("create")
def create_command(
    ctx: typer.Context,
    username: UsernameArgument,
    email: Annotated[Optional[str], typer.Option("--email", help="Email address (unique).")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin.")] = False,
    output: OutputOption = None,
) -> None:
    """Create a user (admins only; while there is no admin, anyone may create one).

    Example: itemctl --as root users create alice --email alice@example.com
    """
    from itemctl.models import UserCreate
    from itemctl.services import users
    from itemctl.services.common import validated

    user_in = validated(UserCreate, {"username": username, "email": email, "is_admin": admin})
    with command_session(ctx.obj) as (session, actor):
        user = users.create_user(session=session, actor=actor, user_in=user_in)
    _emit_users(user.model_dump(mode="json"), output)


@app.command("update")
def update_command(
    ctx: typer.Context,
    username: UsernameArgument,
    email: Annotated[Optional[str], typer.Option("--email", help='New email ("" clears it).')] = None,
    admin: Annotated[
        Optional[bool], typer.Option("--admin/--no-admin", help="Grant or revoke admin.", show_default=False)
    ] = None,
    output: OutputOption = None,
) -> None:
    """Change a user's email or admin rights (admins only; the last admin stays one).

    Example: itemctl --as root users update alice --admin
    """
    from itemctl.models import UserUpdate
    from itemctl.services import users
    from itemctl.services.common import validated

    changes = {k: v for k, v in (("email", email), ("is_admin", admin)) if v is not None}
    user_in = validated(UserUpdate, changes)
    with command_session(ctx.obj) as (session, actor):
        user = users.update_user(
            session=session, actor=actor, username=username, user_in=user_in, on_notice=notice
        )
    _emit_users(user.model_dump(mode="json"), output)


@app.command("delete")
def delete_command(
    ctx: typer.Context,
    username: UsernameArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (required without a terminal).")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the user that would be deleted, with their item count; delete nothing.")
    ] = False,
    output: OutputOption = None,
) -> None:
    """Delete a user and every item they own (admins only).

    \b
    Example: itemctl --as root users delete bob --yes
    Example: itemctl --as root users delete bob --dry-run -o json
    """
    from itemctl.services import users

    if dry_run:
        with command_session(ctx.obj, writes=False) as (session, actor):
            user = users.user_to_delete(session=session, actor=actor, username=username)
        _emit_users(user.model_dump(mode="json"), output)
        notice(f"would delete user {user.username!r} and the {user.item_count} item(s) they own; nothing was deleted (--dry-run)")
        return
    if must_ask(yes=yes, what="delete"):
        # Asked before the deleting transaction: no lock is held while a person decides.
        with command_session(ctx.obj, writes=False) as (session, actor):
            user = users.user_to_delete(session=session, actor=actor, username=username)
        confirm(f"Delete user {user.username!r} and the {user.item_count} item(s) they own?")
    with command_session(ctx.obj) as (session, actor):
        gone = users.delete_user(session=session, actor=actor, username=username)
    notice(f"deleted user {gone.username!r} and {gone.item_count} item(s)")
