"""``db history`` and ``db check``: the revisions, and whether the models match the database."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from itemctl.core.db import reader
from itemctl.services.schema.head import alembic_quietly, head_revision, schema_revision, script_directory


@dataclass
class Revision:
    revision: str
    down_revision: str | None
    message: str
    is_head: bool
    is_current: bool = False


def list_revisions(current: str | None = None) -> list[Revision]:
    """Every revision, newest first."""
    script = script_directory()
    heads = set(script.get_heads())
    return [
        Revision(
            rev.revision,
            rev.down_revision if isinstance(rev.down_revision, str) else None,
            rev.doc or "",
            rev.revision in heads,
            rev.revision == current,
        )
        for rev in script.walk_revisions()
    ]


@dataclass
class CheckResult:
    current: str | None
    head: str
    differences: list[str]

    @property
    def ok(self) -> bool:
        return self.current == self.head and not self.differences


def check(engine: Engine) -> CheckResult:
    """Is the database at head, and do the models match what the migrations built?"""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    head = head_revision()
    with reader(engine) as connection:
        current_rev = schema_revision(connection)
        differences: list[str] = []
        if current_rev == head:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            with alembic_quietly():
                diffs = compare_metadata(context, SQLModel.metadata)
            differences = [_describe(diff) for diff in diffs]
    return CheckResult(current_rev, head, differences)


def _describe(diff) -> str:
    """One autogenerate difference in words: what, where, and which side has it."""
    if isinstance(diff, list):  # column modifications come grouped
        return "; ".join(_describe(d) for d in diff)
    kind = diff[0]
    if kind in ("add_column", "remove_column"):
        where = f"column {diff[2]}.{diff[3].name}"
    elif kind.startswith("modify_"):
        where = f"column {diff[2]}.{diff[3]}"
    else:
        obj = diff[1]
        table = getattr(getattr(obj, "table", None), "name", None)
        name = getattr(obj, "name", None) or str(obj)
        where = f"{kind.split('_', 1)[1]} {table + '.' if table and table != name else ''}{name}"
    side = {
        "add": "in the models, not in the database",
        "remove": "in the database, not in the models",
        "modify": "differs",
    }[kind.split("_", 1)[0]]
    return f"{where} {side}"
