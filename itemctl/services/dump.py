"""``db dump`` and ``db restore``: an exact, validated, streaming copy between databases.

A dump is JSON lines: a header (format, version, schema revision), then users, tags and
items, each in id order, parents before children, then a trailer with how many users,
tags, items and links came before it, so that a dump cut short is told from a whole one. Items name their owner by username and
their tags by name, and every record keeps its id and timestamps, so a dump of the
embedded SQLite default restores into PostgreSQL (and back) and dumps again to the same
bytes. Nothing volatile is written (no time of dumping).

Restore reads the same lines one at a time, validates each with the rules every other
way in applies, and writes them through the dialect's store in the command's one
transaction (PostgreSQL: ``COPY``; SQLite: ``executemany``); memory holds the users' and
tags' ids, never the items.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO

from pydantic import ValidationError
from sqlalchemy import exc, func, select
from sqlmodel import Session

from itemctl.core.errors import ConflictError, InvalidInput, SchemaError, sqlstate_of
from itemctl.core.sink import to_json
from itemctl.core.text import fold_case
from itemctl.models import KNOWN_REVISIONS, Item, ItemCreate, Tag, TagCreate, User, UserCreate
from itemctl.services import audit
from itemctl.services.common import describe_validation_error
from itemctl.services.items import tag_names_of
from itemctl.services.schema import schema_revision
from itemctl.store import store_for

FORMAT = "itemctl-dump"
VERSION = 2  # 2: the trailer line
READABLE_VERSIONS = (1, 2)  # 1 has no trailer: it restores, with a warning
BATCH = 1000
KINDS = ("user", "tag", "item")  # the order records come in


def _when(moment: datetime) -> str:
    """Microseconds and a Z, always: the same text from every backend."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _line(record: dict) -> str:
    return to_json(record, separators=(",", ":")) + "\n"


def _trailer(counts: dict[str, int]) -> dict:
    return {"type": "end", "users": counts["user"], "tags": counts["tag"], "items": counts["item"], "links": counts["link"]}


# -- dump ---------------------------------------------------------------------------------


def dump(*, session: Session, out: IO[str], on_progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Write the whole database to ``out``; return how many records of each kind.

    ``on_progress`` is told how many records are written so far, every thousand items."""
    counts = {kind: 0 for kind in KINDS} | {"link": 0}
    connection = session.connection()
    out.write(_line({"format": FORMAT, "version": VERSION, "revision": schema_revision(connection)}))
    users: dict[uuid.UUID, str] = {}
    for user in session.execute(select(User).order_by(User.id)).scalars():
        users[user.id] = user.username
        out.write(_line({
            "type": "user", "id": str(user.id), "username": user.username, "email": user.email,
            "is_admin": user.is_admin, "created_at": _when(user.created_at),
        }))
        counts["user"] += 1
    for tag in session.execute(select(Tag).order_by(Tag.id)).scalars():
        out.write(_line({"type": "tag", "id": str(tag.id), "name": tag.name}))
        counts["tag"] += 1
    batch: list[Item] = []
    for item in session.execute(select(Item).order_by(Item.id).execution_options(yield_per=BATCH)).scalars():
        batch.append(item)
        if len(batch) == BATCH:
            _write_items(session, batch, users, out, counts)
            batch = []
            if on_progress:
                on_progress(counts["user"] + counts["tag"] + counts["item"])
    _write_items(session, batch, users, out, counts)
    out.write(_line(_trailer(counts)))
    return counts


def _write_items(session: Session, batch: list[Item], users: dict[uuid.UUID, str], out: IO[str], counts: dict[str, int]) -> None:
    tags = tag_names_of(session, [item.id for item in batch])
    counts["item"] += len(batch)
    counts["link"] += sum(len(names) for names in tags.values())
    for item in batch:
        out.write(_line({
            "type": "item", "id": str(item.id), "title": item.title, "description": item.description,
            "owner": users[item.owner_id], "tags": tags.get(item.id, []),
            "created_at": _when(item.created_at), "updated_at": _when(item.updated_at),
        }))


# -- restore ------------------------------------------------------------------------------


@dataclass
class RestoreSummary:
    counts: dict[str, int] = field(default_factory=lambda: {kind: 0 for kind in KINDS})


class _Invalid(Exception):
    """One line of the dump is not what a dump holds."""


def restore(
    *,
    session: Session,
    stream: IO[bytes],
    actor: str | None,
    on_progress: Callable[[int], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> RestoreSummary:
    """Load a dump into this empty database at head, all of it or (on any error) nothing.

    A version-2 dump must end with its trailer, and the trailer must count what came
    before it: a dump cut short (a copy interrupted, a full disk) restores nothing."""
    _require_empty(session)
    lines = _lines(stream)
    summary = RestoreSummary()
    writer = None
    try:
        header_line, header = next(lines, (1, None))
        _check_header(header)
        if header["version"] == 1 and on_notice:
            on_notice("warning: this dump is format version 1, which has no trailer: whether it is complete cannot be checked")
        writer = store_for(session.connection()).restoring()
        reader = _Records(writer)
        last = header_line
        trailer = None
        for number, record in lines:
            last = number
            if trailer is not None:
                raise InvalidInput(f"line {number} of the dump comes after its trailer (line {trailer}); nothing was restored")
            try:
                if isinstance(record, dict) and record.get("type") == "end" and header["version"] >= 2:
                    reader.check_trailer(record)
                    trailer = number
                    continue
                kind = reader.take(record, number)
            except _Invalid as problem:
                raise InvalidInput(f"line {number} of the dump: {problem}; nothing was restored") from None
            summary.counts[kind] += 1
            if on_progress and number % BATCH == 0:
                on_progress(number)
        if trailer is None and header["version"] >= 2:
            raise InvalidInput(
                f"the dump ends early at line {last + 1}: its trailer is missing (a copy cut short?); nothing was restored",
                hint="take the dump again, or find the rest of the file",
            )
        writer.finish()
    except BaseException as error:
        if writer is not None:
            writer.abort(error)  # a COPY under way must end before the transaction rolls back
        if isinstance(error, _Invalid):
            raise InvalidInput(f"line {header_line} of the dump: {error}; nothing was restored") from None
        # Wrapped by SQLAlchemy (SQLite) or straight from psycopg's COPY (PostgreSQL).
        if isinstance(error, exc.IntegrityError) or (sqlstate_of(error) or "").startswith("23"):
            raise InvalidInput(f"{_repeated(stream, error)}; nothing was restored") from None
        raise
    audit.record(session, actor=actor, action="db.restore", target=header["revision"], details=dict(summary.counts))
    return summary


# What a unique index of each table refused, when the dump's own checks let it through:
# the database folds some names together that Python's rules keep apart.
_REFUSED = {
    "item_tag": "an item names the same tag twice, in spellings this database folds together",
    "tag": "the dump holds two tags with the same id, or names this database folds to the same lower case "
    "(such as 'İ' and 'i' on PostgreSQL)",
    "user": "the dump holds two users with the same id, or usernames this database takes for the same",
}


def _repeated(stream: IO[bytes], error: BaseException) -> str:
    """What a unique index refused: the table its constraint belongs to, then for items,
    which one by its line."""
    driver = getattr(error, "orig", None) or error
    diag = getattr(driver, "diag", None)
    if diag is not None:  # PostgreSQL names the table (never read the values in its detail)
        named = f"{diag.table_name or ''} {diag.constraint_name or ''}"
    else:  # SQLite: "UNIQUE constraint failed: tag.id" or "…: index 'uq_tag_lower_name'"
        named = str(driver).partition("\n")[0]
    table = next((table for table in ("item_tag", "item", "tag", "user") if table in named), "item")
    return _REFUSED[table] if table in _REFUSED else _repeated_item(stream)


def _repeated_item(stream: IO[bytes]) -> str:
    """Which item a unique index refused, named by its line: the dump is read again (items
    are too many to remember on the way; this costs memory only when a restore fails). A
    stream that cannot be read twice (stdin) gets the reason without the line."""
    unnamed = "the dump holds two items with the same id, or with the same owner and title"
    try:
        stream.seek(0)
    except (OSError, ValueError, AttributeError):
        return unnamed
    seen: dict[object, int] = {}
    for number, record in _lines(stream):
        if not isinstance(record, dict) or record.get("type") != "item":
            continue
        title = str(record.get("title", "")).strip()
        for key, what in (
            (("id", str(record.get("id"))), f"item id {record.get('id')}"),
            (("title", str(record.get("owner")), title), f"item {title!r} of {record.get('owner')!r}"),
        ):
            if key in seen:
                return f"line {number} of the dump: {what} appears twice (first at line {seen[key]})"
            seen[key] = number
    return unnamed


def _require_empty(session: Session) -> None:
    for model, name in ((User, "user"), (Tag, "tag"), (Item, "item")):
        if session.execute(select(func.count()).select_from(model)).scalar_one():
            raise ConflictError(
                f"the database is not empty (it has at least one {name}); restore loads into an empty database only",
                hint="restore into a new database: create it, `itemctl db migrate`, then `itemctl db restore`",
            )


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, object]]:
    """(line number, parsed JSON) for each non-empty line; the header is line 1."""
    for number, raw in enumerate(stream, start=1):
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            raise InvalidInput(f"line {number} of the dump is not UTF-8 (byte {error.start + 1}); nothing was restored") from None
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except RecursionError:
            raise InvalidInput(f"line {number} of the dump is nested too deeply to be a record; nothing was restored") from None
        except json.JSONDecodeError as error:
            if not raw.endswith(b"\n"):
                raise InvalidInput(
                    f"the dump ends early at line {number}, in the middle of a record (a copy cut short?); nothing was restored",
                    hint="take the dump again, or find the rest of the file",
                ) from None
            raise InvalidInput(
                f"line {number} of the dump is not JSON: {error.msg} (column {error.colno}); nothing was restored"
            ) from None
        yield number, record


def _check_header(header) -> None:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _Invalid(f'not an itemctl dump (the first line must be a header with "format": "{FORMAT}")')
    if header.get("version") not in READABLE_VERSIONS or isinstance(header.get("version"), bool):
        raise _Invalid(
            f"dump format version {header.get('version')!r} is not one this itemctl reads "
            f"({', '.join(map(str, READABLE_VERSIONS))})"
        )
    revision = header.get("revision")
    if revision not in KNOWN_REVISIONS:
        raise SchemaError(
            f"the dump is from schema revision {revision!r}, newer than this itemctl (head {KNOWN_REVISIONS[-1]})",
            hint="upgrade itemctl to restore it",
        )


def _uuid(record: dict, key: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(str(record[key]))
    except (KeyError, ValueError):
        raise _Invalid(f"{key}: not a UUID: {record.get(key)!r}") from None


def _moment(record: dict, key: str) -> datetime:
    value = record.get(key)
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise _Invalid(f"{key}: not an ISO 8601 timestamp: {value!r}") from None
    if moment.tzinfo is None:
        raise _Invalid(f"{key}: a timestamp without a time zone: {value!r}")
    return moment.astimezone(timezone.utc)


def _valid(model, data: dict):
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise _Invalid(describe_validation_error(error)) from None


class _Records:
    """Checks each record (kind order, fields, rules, references) and hands it on."""

    FIELDS = {
        "user": {"type", "id", "username", "email", "is_admin", "created_at"},
        "tag": {"type", "id", "name"},
        "item": {"type", "id", "title", "description", "owner", "tags", "created_at", "updated_at"},
    }

    def __init__(self, writer) -> None:
        self.writer = writer
        self.kind_index = 0
        self.users: dict[str, uuid.UUID] = {}
        self.tags: dict[str, uuid.UUID] = {}
        # Where each user's and tag's id and name first appeared, to name a repeat by its
        # line (items are too many to remember: their repeats are found by the indexes).
        self.seen: dict[object, int] = {}
        self.counts = {kind: 0 for kind in KINDS} | {"link": 0}
        self.line = 0

    def _once(self, key: object, what: str) -> None:
        if key in self.seen:
            raise _Invalid(f"{what} appears twice (first at line {self.seen[key]})")
        self.seen[key] = self.line

    def check_trailer(self, record: dict) -> None:
        """The trailer counts what came before it; a difference means records were lost."""
        expected = {"users": "user", "tags": "tag", "items": "item", "links": "link"}
        if set(record) != {"type", *expected}:
            raise _Invalid("the trailer must hold exactly type, users, tags, items and links")
        for key, kind in expected.items():
            stated = record[key]
            if not isinstance(stated, int) or isinstance(stated, bool) or stated != self.counts[kind]:
                raise _Invalid(f"the dump holds {self.counts[kind]} {key}, its trailer says {stated!r}")

    def take(self, record, line: int = 0) -> str:
        self.line = line
        if not isinstance(record, dict) or record.get("type") not in KINDS:
            raise _Invalid('a record must be an object with "type" user, tag or item')
        kind = record["type"]
        if KINDS.index(kind) < self.kind_index:
            raise _Invalid(f"a {kind} after the {KINDS[self.kind_index]}s: parents come before children")
        self.kind_index = KINDS.index(kind)
        unknown = set(record) - self.FIELDS[kind]
        missing = self.FIELDS[kind] - set(record) - {"email", "description"}
        if unknown or missing:
            raise _Invalid(f"{kind} record: " + "; ".join(
                [f"unknown field {name!r}" for name in sorted(unknown)] + [f"missing field {name!r}" for name in sorted(missing)]
            ))
        getattr(self, f"_{kind}")(record)
        self.counts[kind] += 1
        return kind

    def _user(self, record: dict) -> None:
        user = _valid(UserCreate, {"username": record["username"], "email": record.get("email"), "is_admin": record["is_admin"]})
        if not isinstance(record["is_admin"], bool):
            raise _Invalid("is_admin: must be true or false")
        self._once(("user", user.username), f"username {user.username!r}")
        self._once(("user id", _uuid(record)), f"user id {record['id']}")
        self.users[user.username] = _uuid(record)
        self.writer.user({
            "id": self.users[user.username], "username": user.username, "email": user.email,
            "is_admin": user.is_admin, "created_at": _moment(record, "created_at"),
        })

    def _tag(self, record: dict) -> None:
        tag = _valid(TagCreate, {"name": record["name"]})
        self._once(("tag", fold_case(tag.name)), f"tag name {tag.name!r}")
        self._once(("tag id", _uuid(record)), f"tag id {record['id']}")
        self.tags[tag.name] = _uuid(record)
        self.writer.tag({"id": self.tags[tag.name], "name": tag.name})

    def _item(self, record: dict) -> None:
        if not isinstance(record["tags"], list):
            raise _Invalid("tags: must be a list of names")
        item = _valid(ItemCreate, {"title": record["title"], "description": record.get("description"), "tags": record["tags"]})
        owner = self.users.get(record["owner"])
        if owner is None:
            raise _Invalid(f"owner: no user {record['owner']!r} earlier in the dump")
        tag_ids = []
        for name in item.tags:
            if name not in self.tags:
                raise _Invalid(f"tags: no tag {name!r} earlier in the dump")
            tag_ids.append(self.tags[name])
        item_id = _uuid(record)
        self.counts["link"] += len(tag_ids)
        self.writer.item(
            {
                "id": item_id, "title": item.title, "description": item.description, "owner_id": owner,
                "created_at": _moment(record, "created_at"), "updated_at": _moment(record, "updated_at"),
            },
            tag_ids,
        )
