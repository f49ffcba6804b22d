"""What the writers know about the tables, read from the models' table metadata.

A new column is a model change and a migration: the column lists below follow, and so
does every statement the stores build from them. Only the columns a bulk write fills
itself (the key, the owner, the timestamps) are named here, once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter

from sqlalchemy import String, Table, Text, UniqueConstraint
from sqlalchemy.engine import Dialect

from itemctl.models import Item, ItemImportRow, ItemTag, Tag, User

TABLES: dict[str, Table] = {
    "user": User.__table__,
    "tag": Tag.__table__,
    "item": Item.__table__,
    "item_tag": ItemTag.__table__,
}
# Every column of each table, in the table's order: what restore writes.
COLUMNS: dict[str, tuple[str, ...]] = {kind: tuple(table.columns.keys()) for kind, table in TABLES.items()}

_item = TABLES["item"]
ITEM_ID = _item.primary_key.columns.keys()[0]
# The column naming the item's owner: its foreign key to the user table.
ITEM_OWNER = next(c.name for c in _item.columns if any(fk.column.table is TABLES["user"] for fk in c.foreign_keys))
# Set to the moment of the write (on an upsert, updated_at alone).
ITEM_CREATED, ITEM_UPDATED = "created_at", "updated_at"
# The (owner, title) an imported row is found by: the item's unique constraint.
_key = next(c for c in _item.constraints if isinstance(c, UniqueConstraint))
ITEM_KEY: tuple[str, ...] = tuple(_key.columns.keys())
ITEM_KEY_CONSTRAINT: str = _key.name
# The item's columns an import row carries (title, description), in the table's order...
ITEM_CONTENT: tuple[str, ...] = tuple(name for name in COLUMNS["item"] if name in ItemImportRow.model_fields)
# ... and those an upsert replaces (all but the key), each kept when the input lacks it.
ITEM_REPLACED: tuple[str, ...] = tuple(name for name in ITEM_CONTENT if name not in ITEM_KEY)
KEEP = tuple(f"keep_{name}" for name in ITEM_REPLACED)


def insert_items(now: str) -> str:
    """``INSERT INTO item (…) SELECT …`` from each staged row ``s`` joined to its owner ``u``
    (the same on both dialects but for how the moment ``now`` is spelled); each store adds
    which rows. A column no import fills is left to its default."""
    filled = {ITEM_ID: "s.id", ITEM_OWNER: "u.id", ITEM_CREATED: now, ITEM_UPDATED: now}
    filled |= {name: f"s.{name}" for name in ITEM_CONTENT}
    names = [name for name in COLUMNS["item"] if name in filled]
    return (
        f"INSERT INTO item ({', '.join(names)}) SELECT {', '.join(filled[name] for name in names)}"
        ' FROM import_row s JOIN "user" u ON u.username = s.owner'
    )


def item_column(name: str, dialect: Dialect) -> str:
    """An item column's type and nullability in ``dialect``'s DDL, for a staging table.
    Text is staged unbounded: its length was checked on the client (validation), and a
    bounded type would check it again for every row."""
    column = TABLES["item"].c[name]
    is_text = isinstance(getattr(column.type, "impl_instance", column.type), String)  # under a TypeDecorator too
    type_ = Text() if is_text else column.type
    return type_.compile(dialect=dialect) + ("" if column.nullable else " NOT NULL")


def getter(names: Sequence[str]) -> Callable[[object], tuple]:
    """The named attributes of an object, always as a tuple (``attrgetter`` returns one
    value alone when given one name)."""
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda row: (one(row),)
    return attrgetter(*names) if names else lambda row: ()
