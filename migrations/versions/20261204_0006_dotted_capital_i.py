"""İ folds to i, as PostgreSQL's lower() folds it

Case-insensitive names (tags, emails) fold letter by letter on both backends. Until now
itemctl's lower() on SQLite kept U+0130 (İ, whose full lower case is two characters) as it
was, where PostgreSQL's lower() gives its simple lower case, i: "İ" and "i" were two tags
on SQLite and one on PostgreSQL, and a dump holding both did not restore there.

SQLite: the expression indexes on lower() are rebuilt with the new folding, after a check
that no two tags (or emails) become one; if some would, the migration stops naming them,
with nothing changed. PostgreSQL already folds this way: nothing to do.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 12:00:00

"""
from collections import defaultdict
from typing import Sequence, Union

from alembic import op

revision: str = "0006"
down_revision: Union[str, None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _fold(value: str) -> str:
    """PostgreSQL's lower(): each letter its simple lower case (itemctl.core.text.fold_case,
    written out here because a revision must not depend on the code of a later release)."""
    return "".join(c.lower()[0] for c in value)


def _collisions(connection, query: str) -> list[str]:
    groups = defaultdict(list)
    for (value,) in connection.exec_driver_sql(query):
        groups[_fold(value)].append(value)
    return [", ".join(ascii(v) for v in values) for values in groups.values() if len(values) > 1]


def upgrade() -> None:
    if op.get_context().as_sql or op.get_bind().dialect.name != "sqlite":
        return
    connection = op.get_bind()
    problems = [f"tags: {group}" for group in _collisions(connection, "SELECT name FROM tag")]
    problems += [
        f"emails: {group}"
        for group in _collisions(connection, 'SELECT email FROM "user" WHERE email IS NOT NULL')
    ]
    if problems:
        raise RuntimeError(
            "names that become one when İ folds to i, as on PostgreSQL: "
            + "; ".join(problems)
            + "; rename or merge them, then migrate again"
        )
    op.execute("REINDEX uq_tag_lower_name")
    op.execute("REINDEX uq_user_lower_email")


def downgrade() -> None:
    """Nothing to undo: the indexes follow the folding of the itemctl that uses them."""
