"""The direct load (PostgreSQL, ``--mode insert``): the common case at the cost of psql's
own ``\\copy``.

Rows go straight into ``item`` by COPY while the file is still being read, so parsing on
the client and writing on the server overlap, and each row is written once. Item ids are
made on the client; owners and tag names are looked up in batches as new ones appear (the
COPY pauses for the lookup). Links wait in a spool file, already resolved to ids, and follow
in a second COPY once every item exists. The SQL (the COPY, the spool, the lookups and the
tags created) is the PostgreSQL store's; this module decides what to write, and when.

It is an optimisation, not a second behaviour: at the first thing that is not a clean row
(an invalid record, an unknown owner, a row the unique index refuses, a tag named twice as
the database folds case) it raises ``NotClean``; the pipeline rolls back to its savepoint and
reads the input again along the staged path, which reports exactly what is wrong.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from itemctl.models import User
from itemctl.services.bulk.loader import BATCH, ImportOptions, require_permission
from itemctl.services.bulk.readers import Record
from itemctl.services.bulk.validation import ValidRow, validate

if TYPE_CHECKING:  # the store is imported where it is made: store_for(), on PostgreSQL only
    from itemctl.store.postgres import PostgresStore

CACHE_LIMIT = 100_000  # owner and tag ids kept between batches


class NotClean(Exception):
    """The input needs the staged path (its errors, or a case this path does not take)."""


def applies(dialect: str, options: ImportOptions) -> bool:
    """Insert mode on PostgreSQL (a pipe is spooled so that it can be read a second time)."""
    return dialect == "postgresql" and options.mode == "insert"


def _uuid4_hex():
    """Random (version 4) UUIDs as 32 hex digits, as ``uuid.uuid4().hex`` makes them, from
    one read of the system's random source per thousand."""
    while True:
        digits = os.urandom(16 * 1000).hex()
        for start in range(0, len(digits), 32):
            h = digits[start : start + 32]
            yield f"{h[:12]}4{h[13:16]}{_VARIANT[h[16]]}{h[17:]}"


# The variant digit of a random UUID: 10xx in binary, from any hex digit.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


class DirectLoad:
    """One direct load through the PostgreSQL store (the session's transaction)."""

    def __init__(self, store: PostgresStore, options: ImportOptions, actor: User, default_owner: str) -> None:
        self.store = store
        self.options = options
        self.username, self.is_admin = actor.username, actor.is_admin
        self.default_owner = default_owner
        self.owners: dict[str, str] = {}  # username -> id
        self.tags: dict[str, str] = {}  # a name as written -> the tag's id
        self.pending: list[tuple[str, ValidRow]] = []
        self.unknown_owners: set[str] = set()
        self.unknown_tags: dict[str, None] = {}  # first-seen order: a new tag keeps its first spelling
        self.read = 0
        self.timings: dict[str, float] = {}
        self.ids = _uuid4_hex()

    def run(self, records: Iterable[Record], on_progress: Callable[[int], None] | None) -> int:
        """Load every record; the number read (all of them inserted)."""
        phase = self.options.on_phase or (lambda name: None)
        exclusive = self.store.exclusive(self.options.on_notice) if self.options.exclusive else None
        if exclusive:
            exclusive.take()
        started, cpu = time.perf_counter(), time.process_time()
        copy = self.store.copy
        self.spool = self.store.link_spool()
        try:
            try:
                for record in records:
                    self.read += 1
                    if on_progress and self.read % BATCH == 0:
                        on_progress(self.read)
                    self._add(record)
                    if len(self.pending) >= BATCH:
                        self._flush()
                self._flush()
            except BaseException as error:
                copy.end(error)
                raise
            copy.end()
            # The client's own work (read, validate, format) ran while the server wrote.
            self.timings["client"] = time.process_time() - cpu
            self.timings["items"] = time.perf_counter() - started
            started = time.perf_counter()
            phase("linking tags")
            self.spool.load(copy)
            self.timings["links"] = time.perf_counter() - started
        finally:
            self.spool.close()
        if exclusive:
            phase("re-creating indexes and foreign keys")
            self.timings.update(exclusive.restore())
        return self.read

    def _add(self, record: Record) -> None:
        checked = validate(record, self.default_owner)
        if isinstance(checked, str):
            raise NotClean()
        require_permission(checked, self.username, self.is_admin)
        self.pending.append((next(self.ids), checked))
        if checked.owner not in self.owners:
            self.unknown_owners.add(checked.owner)
        for name in checked.tags:
            if name not in self.tags:
                self.unknown_tags[name] = None

    def _flush(self) -> None:
        if len(self.tags) + len(self.owners) > CACHE_LIMIT:
            # A file of mostly distinct tags or owners: memory stays flat, and the names of
            # this batch are simply looked up again.
            self.tags.clear()
            self.owners.clear()
            for _item_id, row in self.pending:
                self.unknown_owners.add(row.owner)
                self.unknown_tags.update(dict.fromkeys(row.tags))
        if self.unknown_owners or self.unknown_tags:
            self.store.copy.end()  # the COPY pauses for the lookup
            self._resolve()
        if not self.pending:
            return
        write_item, owners, tags, spool = self.store.item_writer(), self.owners, self.tags, self.spool
        for item_id, row in self.pending:
            write_item(item_id, row, owners[row.owner])
            if row.tags:
                ids = {tags[name] for name in row.tags}
                if len(ids) != len(row.tags):
                    raise NotClean()  # two names of one tag as the database folds case
                spool.add(item_id, ids)
        self.pending.clear()

    def _resolve(self) -> None:
        """Look up the owners and tag names seen since the last lookup; create new tags."""
        if self.unknown_owners:
            self.owners.update(self.store.owner_ids(self.unknown_owners))
            if not self.unknown_owners <= self.owners.keys():
                raise NotClean()  # an unknown owner: the staged path names every one
            self.unknown_owners.clear()
        if self.unknown_tags:
            self.tags.update(self.store.tag_ids(list(self.unknown_tags)))
            if not self.unknown_tags.keys() <= self.tags.keys():
                raise NotClean()
            self.unknown_tags.clear()
