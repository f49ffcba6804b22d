"""text rules: NFC everywhere, emails unique in any case, one case folding on SQLite

Existing titles, descriptions, tag names and emails are brought to Unicode NFC, so a
"Café" typed on a Mac (NFD) and one typed on Linux are one title and one tag. Two rows
that become one (the same owner's titles, tag names or emails equal after NFC and case
folding) are a collision: the migration stops, names them, and changes nothing, rather
than merging them silently.

Emails get a unique index on lower(email). On SQLite, lower() is itemctl's Unicode-wide
function from now on (registered on every connection), so the expression index on
lower(tag.name) is rebuilt with it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 11:40:00

"""
import unicodedata
from collections import defaultdict
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _nfc(value):
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


def _fold(value: str) -> str:
    """PostgreSQL's lower(): letter by letter (itemctl.core.text.fold_case, written out
    here because a revision must not depend on the code of a later release)."""
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in value)


def _candidates(connection, table: str, columns: str, text_columns: list[str]):
    """Rows whose text may not be NFC: PostgreSQL says which; SQLite's are all read."""
    if connection.dialect.name == "postgresql":
        where = " OR ".join(f"({c} IS NOT NULL AND {c} IS NOT NFC NORMALIZED)" for c in text_columns)
        return connection.exec_driver_sql(f'SELECT {columns} FROM "{table}" WHERE {where}').all()
    return connection.exec_driver_sql(f'SELECT {columns} FROM "{table}"').all()


def _collisions(connection, query: str, key) -> list[str]:
    """Groups of rows that one key (after NFC and case folding) would merge."""
    groups = defaultdict(list)
    for row in connection.exec_driver_sql(query):
        groups[key(row)].append(row)
    # ascii(): two spellings that look alike on screen are told apart (Cafe\u0301, Caf\xe9).
    return [", ".join(ascii(r[-1]) for r in rows) for rows in groups.values() if len(rows) > 1]


def upgrade() -> None:
    if op.get_context().as_sql:  # `db migrate --sql`: the data pass needs a database
        op.execute("-- rows brought to NFC by the migration itself (not expressible as SQL here)")
        op.create_index("uq_user_lower_email", "user", [sa.literal_column("lower(email)")], unique=True)
        return
    connection = op.get_bind()
    problems = []
    titles = "SELECT owner_id, title FROM item"
    if connection.dialect.name == "postgresql":  # only owners who have a title to change
        titles += " WHERE owner_id IN (SELECT owner_id FROM item WHERE title IS NOT NFC NORMALIZED)"
    problems += [
        f"titles of one owner: {group}"
        for group in _collisions(connection, titles, lambda r: (str(r[0]), _nfc(r[1])))
    ]
    problems += [
        f"tags: {group}"
        for group in _collisions(connection, "SELECT id, name FROM tag", lambda r: _fold(_nfc(r[1])))
    ]
    problems += [
        f"emails: {group}"
        for group in _collisions(
            connection, 'SELECT id, email FROM "user" WHERE email IS NOT NULL', lambda r: _nfc(r[1]).lower()
        )
    ]
    if problems:
        raise RuntimeError(
            "rows that would become one under the text rules (NFC, case folding): "
            + "; ".join(problems)
            + "; rename or merge them, then migrate again"
        )
    for table, key, text_columns in (
        ("item", "id", ["title", "description"]),
        ("tag", "id", ["name"]),
        ("user", "id", ["email"]),
    ):
        columns = ", ".join([key, *text_columns])
        for row in _candidates(connection, table, columns, text_columns):
            values = {c: _nfc(v) for c, v in zip(text_columns, row[1:])}
            if values != dict(zip(text_columns, row[1:])):
                assignments = ", ".join(f"{c} = :{c}" for c in text_columns)
                connection.execute(
                    sa.text(f'UPDATE "{table}" SET {assignments} WHERE {key} = :key'), {**values, "key": row[0]}
                )
    op.create_index("uq_user_lower_email", "user", [sa.literal_column("lower(email)")], unique=True)
    if connection.dialect.name == "sqlite":
        op.execute("REINDEX uq_tag_lower_name")


def downgrade() -> None:
    op.drop_index("uq_user_lower_email", table_name="user")
