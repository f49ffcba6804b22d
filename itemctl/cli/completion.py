"""Shell completion of tag names and usernames, read from the database.

Typer provides the shell scripts (`itemctl --install-completion`); these functions supply
the dynamic values. A completion must never print an error or hang a shell: any failure
completes nothing.
"""

from __future__ import annotations

LIMIT = 50


def _names(ctx, sql: str, incomplete: str) -> list[str]:
    try:
        from sqlalchemy import text

        from itemctl.cli.runtime import State

        root = ctx.find_root().params if ctx is not None else {}
        state = State(database_url=root.get("database_url"), environment=root.get("env"), connect_timeout=2)
        from itemctl.core.db import reader

        with reader(state.engine()) as connection:
            rows = connection.execute(text(sql), {"prefix": incomplete.lower() + "%", "limit": LIMIT})
            return [row[0] for row in rows]
    except Exception:
        return []


def complete_tags(ctx, incomplete: str) -> list[str]:
    return _names(ctx, "SELECT name FROM tag WHERE lower(name) LIKE :prefix ORDER BY lower(name) LIMIT :limit", incomplete)


def complete_usernames(ctx, incomplete: str) -> list[str]:
    return _names(ctx, 'SELECT username FROM "user" WHERE lower(username) LIKE :prefix ORDER BY username LIMIT :limit', incomplete)
