"""The SQLite loader (the embedded default): a temporary table, then row-by-row writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlmodel import select

from itemctl.core.text import fold_case
from itemctl.models import Item, ItemTag, Tag, User
from itemctl.models.base import new_id, utcnow
from itemctl.services.bulk.loader import BATCH, Loader
from itemctl.services.bulk.validation import ValidRow
from itemctl.services.tags import ensure_tags


class SqliteLoader(Loader):
    """The embedded default: a temporary table, then row-by-row writes through the ORM."""

    @contextmanager
    def loading(self) -> Iterator[None]:
        self.connection.exec_driver_sql("DROP TABLE IF EXISTS temp.import_row")
        self.connection.exec_driver_sql(
            """
            CREATE TEMP TABLE import_row (
                line INTEGER NOT NULL, rownum INTEGER NOT NULL, title TEXT NOT NULL,
                description TEXT, owner TEXT NOT NULL, tags TEXT, source TEXT,
                keep_description INTEGER NOT NULL, keep_tags INTEGER NOT NULL
            )
            """
        )
        self.pending: list[dict] = []
        yield
        self._flush()

    def add(self, row: ValidRow) -> None:
        self.pending.append(
            {
                "line": row.line,
                "rownum": row.row,
                "title": row.title,
                "description": row.description,
                "owner": row.owner,
                "tags": json.dumps(row.tags, ensure_ascii=False),
                "source": self._source_json(row),
                "keep_description": row.keep_description,
                "keep_tags": row.keep_tags,
            }
        )
        if len(self.pending) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.connection.execute(
                text(
                    "INSERT INTO import_row (line, rownum, title, description, owner, tags, source, keep_description, keep_tags) "
                    "VALUES (:line, :rownum, :title, :description, :owner, :tags, :source, :keep_description, :keep_tags)"
                ),
                self.pending,
            )
            self.pending = []

    def _staged(self) -> Iterator[tuple]:
        last = 0
        while True:
            # By record number: the records of a JSON array may all be on one line.
            batch = self._query(
                "SELECT rownum, title, description, owner, tags, keep_description, keep_tags FROM import_row "
                "WHERE rownum > :last ORDER BY rownum LIMIT :n",
                last=last,
                n=BATCH,
            )
            if not batch:
                return
            yield from batch
            last = batch[-1][0]

    def write(self) -> tuple[int, int]:
        session, mode = self.session, self.options.mode
        owners: dict[str, User] = {}  # bounded by the number of users, not of rows
        inserted = updated = 0
        now = utcnow()
        for _row, title, description, owner_name, tags_json, keep_description, keep_tags in self._staged():
            owner = owners.get(owner_name) or session.exec(select(User).where(User.username == owner_name)).one()
            owners[owner_name] = owner
            names = json.loads(tags_json)
            existing = session.exec(select(Item).where(Item.owner_id == owner.id, Item.title == title)).first()
            if existing is None:
                item = Item(id=new_id(), title=title, description=description, owner_id=owner.id, created_at=now, updated_at=now)
                session.add(item)
                session.flush()
                inserted += 1
            elif mode == "upsert" and self._changed(
                existing, existing.description if keep_description else description, None if keep_tags else names
            ):
                if not keep_description:
                    existing.description = description
                existing.updated_at = now
                session.add(existing)
                item = existing
                updated += 1
                if keep_tags:
                    session.flush()
                    continue
                session.execute(ItemTag.__table__.delete().where(ItemTag.item_id == existing.id))
            else:
                continue  # skip mode, or nothing to change
            for tag in ensure_tags(session=session, names=names):
                session.add(ItemTag(item_id=item.id, tag_id=tag.id))
            session.flush()
        self.connection.exec_driver_sql("DROP TABLE temp.import_row")
        return inserted, updated

    def _changed(self, item: Item, description: str | None, names: list[str] | None) -> bool:
        """Whether the row changes the item; ``names`` None: the tags are left alone."""
        if item.description != description:
            return True
        if names is None:
            return False
        current = self.session.exec(
            select(Tag.name).join(ItemTag, ItemTag.tag_id == Tag.id).where(ItemTag.item_id == item.id)
        ).all()
        return sorted(fold_case(n) for n in current) != sorted(fold_case(n) for n in names)
