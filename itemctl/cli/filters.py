"""The item filters of ``items list``, ``count``, ``export`` and ``delete --where``: the
options, declared once, and the services' ItemFilters they make."""

# No `from __future__ import annotations` here: Typer would evaluate every string
# annotation again when it builds the command tree, which --help pays for on each call.

from typing import Annotated, Optional

import typer

from itemctl.cli.completion import complete_tags, complete_usernames

OwnerFilter = Annotated[
    Optional[str],
    typer.Option("--owner", metavar="USERNAME", help="Only items of this user.", autocompletion=complete_usernames),
]
MineFilter = Annotated[bool, typer.Option("--mine", help="Only your own items.")]
TagFilter = Annotated[
    Optional[list[str]],
    typer.Option(
        "--tag", metavar="TAG", help="Only items with this tag; repeat for items with all of them.", autocompletion=complete_tags
    ),
]
SearchFilter = Annotated[
    Optional[str], typer.Option("--search", metavar="TEXT", help="Titles containing TEXT (any case, literally).")
]
AfterFilter = Annotated[
    Optional[str],
    typer.Option("--created-after", metavar="WHEN", help="Created after this ISO date or timestamp (UTC unless given), or this long ago: 90s, 15m, 24h, 7d, 2w."),
]
BeforeFilter = Annotated[
    Optional[str],
    typer.Option("--created-before", metavar="WHEN", help="Created before this ISO date or timestamp, or this long ago (24h, 7d)."),
]

def item_filters(owner, mine, tags, search, created_after, created_before):
    """The services' ItemFilters from the shared options."""
    from itemctl.core.errors import UsageError
    from itemctl.services.reads import ItemFilters, parse_timestamp

    if owner and mine:
        raise UsageError("--owner and --mine cannot be combined")
    return ItemFilters(
        owner=owner,
        mine=mine,
        tags=list(tags or []),
        search=search,
        created_after=parse_timestamp(created_after, "--created-after"),
        created_before=parse_timestamp(created_before, "--created-before"),
    )
