"""``itemctl items``: list, get, create, update, tag, untag, delete and count items."""

# No `from __future__ import annotations` here: Typer would evaluate every string
# annotation again when it builds the command tree, which --help pays for on each call.

from enum import Enum
from typing import Annotated, Optional

import typer

from itemctl.cli.bulk import export_command, import_command
from itemctl.cli.completion import complete_tags
from itemctl.cli.filters import AfterFilter, BeforeFilter, MineFilter, OwnerFilter, SearchFilter, TagFilter, item_filters
from itemctl.cli.output import OutputOption, echo_data, emit
from itemctl.cli.prompts import confirm, must_ask
from itemctl.cli.runtime import command_session, read_session
from itemctl.core.logging import notice

app = typer.Typer(no_args_is_help=True)  # its help: cli/__init__.py GROUPS


class CountFormat(str, Enum):
    json = "json"


class SortOrder(str, Enum):
    newest = "newest"
    oldest = "oldest"
    title = "title"


ITEM_COLUMNS = ("id", "title", "description", "owner", "tags", "created_at", "updated_at")
ITEM_TABLE_COLUMNS = ("id", "title", "owner", "tags", "updated_at")  # -o wide shows them all
# CSV output is what `items import` reads: the fields of models.item.IMPORT_FIELDS (a test
# holds the two equal; the models are not imported for a listing).
ITEM_CSV_COLUMNS = ("title", "description", "owner", "tags")

IdArgument = Annotated[str, typer.Argument(metavar="ID", help="Item UUID or a unique prefix of 8+ hex digits.")]


def _emit_items(records, output) -> None:
    emit(records, output, columns=ITEM_COLUMNS, csv_columns=ITEM_CSV_COLUMNS, table_columns=ITEM_TABLE_COLUMNS)


@app.command("list")
def list_command(
    ctx: typer.Context,
    owner: OwnerFilter = None,
    mine: MineFilter = False,
    tag: TagFilter = None,
    search: SearchFilter = None,
    created_after: AfterFilter = None,
    created_before: BeforeFilter = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="Page size (at most 10,000).")] = 100,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many items.")] = 0,
    after: Annotated[
        Optional[str], typer.Option("--after", metavar="ID", help="Continue after this item (keyset pagination).")
    ] = None,
    sort: Annotated[SortOrder, typer.Option("--sort", help="Order, ties broken by id.")] = SortOrder.newest,
    output: OutputOption = None,
) -> None:
    """List items, newest first, 100 at a time.

    \b
    Example: itemctl items list --tag urgent --search report -o json
    Next page: itemctl items list --after "$(itemctl items list -o id | tail -n 1)"
    """
    from itemctl.services import reads

    filters = item_filters(owner, mine, tag, search, created_after, created_before)
    with read_session(ctx.obj) as (db, actor):
        page = reads.list_items(db=db, actor=actor, filters=filters, limit=limit, offset=offset, after=after, sort=sort.value)
    _emit_items(page, output)


@app.command("count")
def count_command(
    ctx: typer.Context,
    owner: OwnerFilter = None,
    mine: MineFilter = False,
    tag: TagFilter = None,
    search: SearchFilter = None,
    created_after: AfterFilter = None,
    created_before: BeforeFilter = None,
    output: Annotated[
        Optional[CountFormat], typer.Option("--output", "-o", help='json: {"count": N}. Default: the bare integer.')
    ] = None,
) -> None:
    """Print how many items match the list filters, as a bare integer.

    Example: itemctl items count --owner alice --created-after 24h
    """
    import json

    from itemctl.services import reads

    filters = item_filters(owner, mine, tag, search, created_after, created_before)
    with read_session(ctx.obj) as (db, actor):
        total = reads.count_items(db=db, actor=actor, filters=filters)
    echo_data(json.dumps({"count": total}) if output is CountFormat.json else str(total), json=output is CountFormat.json)


@app.command("get")
def get_command(ctx: typer.Context, item_id: IdArgument, output: OutputOption = None) -> None:
    """Show one item.

    Example: itemctl items get 3f2a9c1b -o json
    """
    from itemctl.services import reads

    with read_session(ctx.obj) as (db, _actor):
        item = reads.get_item(db=db, ref=item_id)
    _emit_items(item, output)


@app.command("create")
def create_command(
    ctx: typer.Context,
    title: Annotated[str, typer.Argument(help="1-255 characters (trimmed).")],
    description: Annotated[Optional[str], typer.Option("--description", help="Up to 1000 characters.")] = None,
    tag: Annotated[
        Optional[list[str]], typer.Option("--tag", metavar="TAG", help="Tag it; repeatable.", autocompletion=complete_tags)
    ] = None,
    owner: Annotated[
        Optional[str], typer.Option("--owner", metavar="USERNAME", help="Owner (admins only; default: you).")
    ] = None,
    output: OutputOption = None,
) -> None:
    """Create an item owned by you (or, as an admin, by --owner).

    Example: itemctl --as alice items create "Quarterly report" --tag ops --tag urgent
    """
    from itemctl.models import ItemCreate
    from itemctl.services import items
    from itemctl.services.common import validated

    item_in = validated(ItemCreate, {"title": title, "description": description, "tags": tag or []})
    with command_session(ctx.obj) as (session, actor):
        item = items.create_item(session=session, actor=actor, item_in=item_in, owner=owner)
    _emit_items(item.model_dump(mode="json"), output)


@app.command("update")
def update_command(
    ctx: typer.Context,
    item_id: IdArgument,
    title: Annotated[Optional[str], typer.Option("--title", help="New title.")] = None,
    description: Annotated[
        Optional[str], typer.Option("--description", help='New description ("" clears it).')
    ] = None,
    owner: Annotated[
        Optional[str], typer.Option("--owner", metavar="USERNAME", help="Give the item to this user (admins).")
    ] = None,
    output: OutputOption = None,
) -> None:
    """Change an item's title, description or owner.

    Example: itemctl items update 3f2a9c1b --title "Final report" --description ""
    """
    from itemctl.models import ItemUpdate
    from itemctl.services import items
    from itemctl.services.common import validated

    changes = {k: v for k, v in (("title", title), ("description", description)) if v is not None}
    item_in = validated(ItemUpdate, changes)
    with command_session(ctx.obj) as (session, actor):
        item = items.update_item(
            session=session, actor=actor, ref=item_id, item_in=item_in, owner=owner, on_notice=notice
        )
    _emit_items(item.model_dump(mode="json"), output)


@app.command("tag")
def tag_command(
    ctx: typer.Context,
    item_id: IdArgument,
    tags: Annotated[
        list[str], typer.Argument(metavar="TAG...", help="Tags to add (created if new).", autocompletion=complete_tags)
    ],
) -> None:
    """Add tags to an item.

    Example: itemctl items tag 3f2a9c1b urgent ops
    """
    from itemctl.services import items

    with command_session(ctx.obj) as (session, actor):
        item = items.tag_item(session=session, actor=actor, ref=item_id, names=tags, on_notice=notice)
    notice(f"item {item.id} tags: {', '.join(item.tags) or '(none)'}")


@app.command("untag")
def untag_command(
    ctx: typer.Context,
    item_id: IdArgument,
    tags: Annotated[
        list[str], typer.Argument(metavar="TAG...", help="Tags to remove (the tags stay).", autocompletion=complete_tags)
    ],
) -> None:
    """Remove tags from an item.

    Example: itemctl items untag 3f2a9c1b urgent
    """
    from itemctl.services import items

    with command_session(ctx.obj) as (session, actor):
        item = items.untag_item(session=session, actor=actor, ref=item_id, names=tags, on_notice=notice)
    notice(f"item {item.id} tags: {', '.join(item.tags) or '(none)'}")


@app.command("delete")
def delete_command(
    ctx: typer.Context,
    item_ids: Annotated[
        Optional[list[str]], typer.Argument(metavar="ID...", help="Items to delete (or --where and filters).", show_default=False)
    ] = None,
    where: Annotated[bool, typer.Option("--where", help="Delete every item the list filters match (at least one filter).")] = False,
    owner: OwnerFilter = None,
    mine: MineFilter = False,
    tag: TagFilter = None,
    search: SearchFilter = None,
    created_after: AfterFilter = None,
    created_before: BeforeFilter = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (required without a terminal).")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be deleted (records on stdout, count on stderr); delete nothing.")
    ] = False,
    output: OutputOption = None,
) -> None:
    """Delete items (their tags stay): the ones named, or all that --where's filters match.

    All or nothing, in one transaction; --where runs one set-based DELETE whatever the number.
    --dry-run checks the same permissions, prints the items in the -o format and changes
    nothing (no confirmation needed).

    \b
    Example: itemctl items delete 3f2a9c1b 77d0e4aa --yes
    Example: itemctl items delete --where --mine --tag obsolete --created-before 30d --yes
    Example: itemctl items delete --where --tag obsolete --dry-run -o ndjson | jq -r .title
    """
    from itemctl.core.errors import UsageError
    from itemctl.services import items

    filtered = any((owner, mine, tag, search, created_after, created_before))
    if where:
        if item_ids:
            raise UsageError("give item ids or --where with filters, not both")
        _delete_where(ctx, item_filters(owner, mine, tag, search, created_after, created_before), yes=yes, dry_run=dry_run, output=output)
        return
    if filtered:
        raise UsageError("filters select items only with --where", hint="itemctl items delete --where --owner U ...")
    if not item_ids:
        raise UsageError("missing item ids", hint="give ID... or --where with filters")
    if dry_run:
        with command_session(ctx.obj, writes=False) as (session, actor):
            targets = items.items_to_delete(session=session, actor=actor, refs=item_ids)
        _emit_items([t.model_dump(mode="json") for t in targets], output)
        notice(f"would delete {len(targets)} item(s); nothing was deleted (--dry-run)")
        return
    if must_ask(yes=yes, what="delete"):
        # Asked before the deleting transaction: no lock is held while a person decides;
        # the delete finds and checks the items again.
        with command_session(ctx.obj, writes=False) as (session, actor):
            targets = items.items_to_delete(session=session, actor=actor, refs=item_ids)
        listing = "\n".join(f"  {t.id}  {t.title}  ({t.owner})" for t in targets)
        confirm(f"Delete {len(targets)} item(s)?\n{listing}\n")
    with command_session(ctx.obj) as (session, actor):
        gone = items.delete_items(session=session, actor=actor, refs=item_ids)
    notice(f"deleted {len(gone)} item(s)")


def _delete_where(ctx: typer.Context, filters, *, yes: bool, dry_run: bool, output) -> None:
    from itemctl.services import items

    shown = " ".join(f"{k}={v}" for k, v in items.describe_filters(filters).items())
    if dry_run:
        with command_session(ctx.obj, writes=False) as (session, actor):
            count = items.count_to_delete(session=session, actor=actor, filters=filters)
            _emit_items(items.items_matching(session=session, actor=actor, filters=filters), output)
        notice(f"would delete {count} item(s) matching {shown}; nothing was deleted (--dry-run)")
        return
    if must_ask(yes=yes, what="delete"):
        with command_session(ctx.obj, writes=False) as (session, actor):
            count = items.count_to_delete(session=session, actor=actor, filters=filters)
        if count == 0:
            notice(f"no item matches {shown}; nothing to delete")
            return
        confirm(f"Delete {count} item(s) matching {shown}?")
    else:
        count = None  # --yes: whatever matches when the delete runs
    with command_session(ctx.obj) as (session, actor):
        deleted = items.delete_where(session=session, actor=actor, filters=filters, confirmed=count)
    notice(f"deleted {deleted} item(s) matching {shown}")


# The batch commands live beside each other in cli/bulk.py; they belong to this group.
app.command("import")(import_command)
app.command("export")(export_command)
