"""``itemctl tags``: list, create, rename and delete tags."""

# No `from __future__ import annotations` here: Typer would evaluate every string
# annotation again when it builds the command tree, which --help pays for on each call.

from typing import Annotated

import typer

from itemctl.cli.completion import complete_tags
from itemctl.cli.output import OutputOption, emit
from itemctl.cli.prompts import confirm, must_ask
from itemctl.cli.runtime import command_session
from itemctl.core.logging import notice

app = typer.Typer(no_args_is_help=True)  # its help: cli/__init__.py GROUPS

TAG_COLUMNS = ("name", "item_count")


@app.command("list")
def list_command(ctx: typer.Context, output: OutputOption = None) -> None:
    """List tags with how many items carry each.

    Example: itemctl tags list -o json
    """
    from itemctl.services import tags

    with command_session(ctx.obj, writes=False) as (session, _actor):
        records = tags.list_tags(session=session)
    emit([t.model_dump(mode="json") for t in records], output, columns=TAG_COLUMNS, id_field="name")


@app.command("create")
def create_command(ctx: typer.Context, name: Annotated[str, typer.Argument(help="1-64 characters, no , or ;.")]) -> None:
    """Create a tag (any user may; names are unique in any case).

    Example: itemctl tags create urgent
    """
    from itemctl.models import TagCreate
    from itemctl.services import tags
    from itemctl.services.common import validated

    tag_in = validated(TagCreate, {"name": name})
    with command_session(ctx.obj) as (session, actor):
        tag = tags.create_tag(session=session, actor=actor, tag_in=tag_in)
    notice(f"created tag {tag.name!r}")


@app.command("rename")
def rename_command(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(help="Current name (any case).", autocompletion=complete_tags)],
    new: Annotated[str, typer.Argument(help="New name.")],
) -> None:
    """Rename a tag everywhere it is used (admins only).

    Example: itemctl --as admin tags rename urgnet urgent
    """
    from itemctl.models import TagCreate
    from itemctl.services import tags
    from itemctl.services.common import validated

    new_in = validated(TagCreate, {"name": new})
    with command_session(ctx.obj) as (session, actor):
        tag = tags.rename_tag(session=session, actor=actor, old=old, new=new_in)
    notice(f"renamed tag {old!r} to {tag.name!r} ({tag.item_count} item(s))")


@app.command("delete")
def delete_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Tag to delete (any case).", autocompletion=complete_tags)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (required without a terminal).")] = False,
) -> None:
    """Delete a tag and its links; the items stay (admins only).

    Example: itemctl --as admin tags delete obsolete --yes
    """
    from itemctl.services import tags

    if must_ask(yes=yes, what="delete"):
        # Asked before the deleting transaction: no lock is held while a person decides.
        with command_session(ctx.obj, writes=False) as (session, actor):
            tag = tags.tag_to_delete(session=session, actor=actor, name=name)
        confirm(f"Delete tag {tag.name!r}? It is on {tag.item_count} item(s), which stay.")
    with command_session(ctx.obj) as (session, actor):
        gone = tags.delete_tag(session=session, actor=actor, name=name)
    notice(f"deleted tag {gone.name!r}; {gone.item_count} item(s) lost it")
