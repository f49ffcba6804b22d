"""Shell completion of tag names and usernames, read from the database.

Typer provides the shell scripts (`itemctl --install-completion`); these functions supply
the dynamic values, which the tags and users services look up. A completion must never
print an error or hang a shell: any failure completes nothing.
"""

from __future__ import annotations

LIMIT = 50


def _names(ctx, lookup, incomplete: str) -> list[str]:
    """``lookup(session=, prefix=, limit=)`` on the database the command line names, read
    without waiting for a writer."""
    try:
        from sqlmodel import Session

        from itemctl.cli.runtime import State
        from itemctl.core.db import reader

        root = ctx.find_root() if ctx is not None else None
        # main()'s invocation; the root options are parsed but not applied while completing.
        state = root.obj if root is not None and isinstance(root.obj, State) else State()
        options = root.params if root is not None else {}
        state.given(database_url=options.get("database_url"), environment=options.get("env"), connect_timeout=2)
        with reader(state.engine()) as connection, Session(bind=connection) as session:
            return lookup(session=session, prefix=incomplete, limit=LIMIT)
    except Exception:
        return []


def complete_tags(ctx, incomplete: str) -> list[str]:
    from itemctl.services.tags import names_starting_with

    return _names(ctx, names_starting_with, incomplete)


def complete_usernames(ctx, incomplete: str) -> list[str]:
    from itemctl.services.users import usernames_starting_with

    return _names(ctx, usernames_starting_with, incomplete)
