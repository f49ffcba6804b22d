"""The read commands: ``items list``, ``items get``, ``items count`` and ``users whoami``.

Plain SQL on the driver's connection (``store/driver.py: Reader``), without the ORM: a
read starts in the time its imports and its queries take, and pays for no model class it
never builds. The item filters are written here once, as SQL, and ``services/items.py``
applies the same text to its deletes and exports.

Records come back as the JSON-ready dicts the output gate prints, with the fields and the
order of ``ItemPublic`` and ``UserPublic``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Literal

from itemctl.core.errors import InvalidInput, NotFoundError, PermissionDenied, UsageError
from itemctl.core.text import shown, clean_text, fold_case

if TYPE_CHECKING:
    from itemctl.core.config import Config
    from itemctl.store.driver import Reader

Sort = Literal["newest", "oldest", "title"]
MAX_LIMIT = 10_000
PREFIX_MIN = 8
_HEX = re.compile(r"[0-9a-f]+")


# -- the filters of items list, count, export and delete --where -----------------------------


@dataclass
class ItemFilters:
    """The filters shared by ``items list``, ``items count`` and ``items export``.

    A filter given with an empty value is refused (exit 6), never taken as "no filter": a
    script whose variable is unset must not widen a listing, an export or a delete. Text
    is compared in NFC, as it is stored.
    """

    owner: str | None = None
    mine: bool = False
    tags: list[str] = field(default_factory=list)
    search: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def __post_init__(self) -> None:
        for name, value in (("owner", self.owner), ("search", self.search), *(("tag", t) for t in self.tags)):
            if value is not None and not value.strip():
                raise InvalidInput(
                    f"{{{name}}} was given an empty value", hint=f"leave {{{name}}} out to match everything", fields=(name,)
                )
        try:
            if self.search is not None:
                self.search = clean_text(self.search)
            self.tags = [clean_text(t.strip()) for t in self.tags]
        except ValueError as error:
            raise InvalidInput(f"invalid filter: {error}") from None

    @property
    def given(self) -> bool:
        """True when at least one filter narrows the match."""
        return bool(self.owner or self.mine or self.tags or self.search or self.created_after or self.created_before)


_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_timestamp(value: str | None, option: str, *, now: datetime | None = None) -> datetime | None:
    """ISO 8601 (without a zone: UTC), or a duration ago: ``90s``, ``15m``, ``24h``, ``7d``, ``2w``."""
    if value is None:
        return None
    text = value.strip()
    duration = _DURATION.fullmatch(text)
    if duration:
        seconds = int(duration.group(1)) * _UNIT_SECONDS[duration.group(2)]
        try:
            return (now or datetime.now(timezone.utc)) - timedelta(seconds=seconds)
        except OverflowError:
            raise InvalidInput(f"invalid {option}: {value!r} reaches back before the year 1") from None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"invalid {option}: {value!r} is neither an ISO 8601 date or timestamp nor a duration",
            hint="for example 2026-11-30, 2026-11-30T08:00:00Z, 90s, 15m, 24h, 7d or 2w",
        ) from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00+14:00 is in the year 0 in UTC
        raise InvalidInput(f"invalid {option}: {value!r} falls outside the years 1 to 9999 in UTC") from None


def filter_sql(db: Reader, actor, filters: ItemFilters) -> tuple[list[str], dict]:
    """The filters as SQL conditions on ``item`` (joined with AND), and their parameters.

    ``--owner`` names a user who must exist (exit 3 otherwise); ``--mine`` matches
    nothing for an actor not stored yet. Tags and the search compare through lower() on
    both sides, as the unique index on tag names does.
    """
    conditions: list[str] = []
    params: dict = {}
    if filters.mine:
        conditions.append("item.owner_id = %(f_owner)s")
        params["f_owner"] = db.id_param(actor.id)
    elif filters.owner:
        row = db.first('SELECT id FROM "user" WHERE username = %(username)s', {"username": filters.owner})
        if row is None:
            raise NotFoundError(f"user {shown(filters.owner)} not found")
        conditions.append("item.owner_id = %(f_owner)s")
        params["f_owner"] = row[0]
    wanted = list({fold_case(name.strip()): name.strip() for name in filters.tags}.values())
    for number, name in enumerate(wanted):
        params[f"f_tag{number}"] = name
    if len(wanted) == 1:
        conditions.append(
            "EXISTS (SELECT 1 FROM item_tag JOIN tag ON tag.id = item_tag.tag_id"
            " WHERE item_tag.item_id = item.id AND lower(tag.name) = lower(%(f_tag0)s))"
        )
    elif wanted:
        # Items carrying all of them, in one grouped subquery whatever their number (one
        # correlated EXISTS per tag grows the plan past what a server answers in time).
        names = ", ".join(f"lower(%(f_tag{number})s)" for number in range(len(wanted)))
        conditions.append(
            "item.id IN (SELECT item_tag.item_id FROM item_tag JOIN tag ON tag.id = item_tag.tag_id"
            f" WHERE lower(tag.name) IN ({names}) GROUP BY item_tag.item_id"
            f" HAVING count(DISTINCT item_tag.tag_id) = {len(wanted)})"
        )
    if filters.search:
        # Literally: LIKE's own characters escaped, as SQLAlchemy's autoescape does.
        escaped = filters.search.replace("/", "//").replace("%", "/%").replace("_", "/_")
        conditions.append("lower(item.title) LIKE lower(%(f_search)s) ESCAPE '/'")
        params["f_search"] = f"%{escaped}%"
    if filters.created_after:
        conditions.append("item.created_at > %(f_after)s")
        params["f_after"] = db.time_param(filters.created_after)
    if filters.created_before:
        conditions.append("item.created_at < %(f_before)s")
        params["f_before"] = db.time_param(filters.created_before)
    return conditions, params


def _where(conditions: list[str]) -> str:
    return " WHERE " + " AND ".join(conditions) if conditions else ""


# -- finding items by id or prefix ---------------------------------------------------------


def id_digits(ref: str) -> str:
    """The hex digits of an item id or prefix (exit 6 for anything else)."""
    digits = ref.strip().lower().replace("-", "")
    if len(digits) < PREFIX_MIN or len(digits) > 32 or not _HEX.fullmatch(digits):
        raise InvalidInput(
            f"invalid item id {ref!r}: give a UUID or at least {PREFIX_MIN} of its leading hex digits"
        )
    return digits


def id_range(digits: str) -> tuple[uuid.UUID, uuid.UUID]:
    """The UUIDs a prefix stands for: a range, so the primary key index answers it on every dialect."""
    return uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))


def check_matches(ref: str, digits: str, matches: list) -> None:
    """One item per ref: none is not found (exit 3), several an ambiguous prefix (exit 6)."""
    if not matches:
        raise NotFoundError(f"item {ref} not found" if len(digits) == 32 else f"no item id starts with {ref}")
    if len(matches) > 1:
        shown = ", ".join(str(m) for m in matches[:5])
        more = " and more" if len(matches) > 5 else ""
        raise InvalidInput(f"item id prefix {ref} is ambiguous: {shown}{more}", hint="give more digits")


_COLUMNS = 'item.id, item.title, item.description, "user".username, item.created_at, item.updated_at'
_FROM = 'FROM item JOIN "user" ON "user".id = item.owner_id'


def _find(db: Reader, ref: str) -> tuple:
    """The row (``_COLUMNS``) of the item whose id is ``ref`` or starts with it."""
    digits = id_digits(ref)
    low, high = id_range(digits)
    rows = db.rows(
        f"SELECT {_COLUMNS} {_FROM} WHERE item.id >= %(low)s AND item.id <= %(high)s ORDER BY item.id LIMIT 6",
        {"low": db.id_param(low), "high": db.id_param(high)},
    )
    check_matches(ref, digits, [db.id_value(row[0]) for row in rows])
    return rows[0]


# -- reading items ----------------------------------------------------------------------------


def tag_names_of(db: Reader, item_ids: list) -> dict:
    """Tag names of many items (ids as the database gives them) in one query, each list
    sorted as tags are listed everywhere: case-folded, then as spelled."""
    names: dict = {}
    if not item_ids:
        return names
    if db.postgres:
        rows = db.rows(
            "SELECT item_tag.item_id, tag.name FROM item_tag JOIN tag ON tag.id = item_tag.tag_id"
            " WHERE item_tag.item_id = ANY(%(ids)s)",
            {"ids": list(item_ids)},
        )
    else:
        marks = ", ".join(f"%(i{number})s" for number in range(len(item_ids)))
        rows = db.rows(
            "SELECT item_tag.item_id, tag.name FROM item_tag JOIN tag ON tag.id = item_tag.tag_id"
            f" WHERE item_tag.item_id IN ({marks})",
            {f"i{number}": item_id for number, item_id in enumerate(item_ids)},
        )
    for item_id, name in rows:
        names.setdefault(item_id, []).append(name)
    for tag_list in names.values():
        tag_list.sort(key=lambda name: (fold_case(name), name))
    return names


def json_time(value: datetime | None) -> str | None:
    """A UTC timestamp as pydantic writes it in JSON: ``2026-12-04T14:53:01.000120Z``."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _records(db: Reader, rows: list[tuple]) -> list[dict]:
    tags = tag_names_of(db, [row[0] for row in rows])
    return [
        {
            "id": str(db.id_value(item_id)),
            "title": title,
            "description": description,
            "owner": owner,
            "tags": tags.get(item_id, []),
            "created_at": json_time(db.time_value(created_at)),
            "updated_at": json_time(db.time_value(updated_at)),
        }
        for item_id, title, description, owner, created_at, updated_at in rows
    ]


_ORDER = {
    "newest": "item.created_at DESC, item.id DESC",
    "oldest": "item.created_at ASC, item.id ASC",
    "title": "item.title ASC, item.id ASC",
}


def _after(db: Reader, ref: str, sort: Sort) -> tuple[str, dict]:
    """Keyset continuation: the rows that come after ``ref`` in this sort order."""
    anchor = _find(db, ref)
    params = {"a_id": anchor[0], "a_title": anchor[1], "a_created": anchor[4]}
    if sort == "newest":
        return "(item.created_at, item.id) < (%(a_created)s, %(a_id)s)", params
    if sort == "oldest":
        return "(item.created_at, item.id) > (%(a_created)s, %(a_id)s)", params
    return "(item.title > %(a_title)s OR (item.title = %(a_title)s AND item.id > %(a_id)s))", params


def list_items(
    *,
    db: Reader,
    actor,
    filters: ItemFilters,
    limit: int = 100,
    offset: int = 0,
    after: str | None = None,
    sort: Sort = "newest",
) -> list[dict]:
    """One page of items, with owners and tags: two queries whatever the page's size."""
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"{{limit}} must be between 1 and {MAX_LIMIT}, not {limit}", fields=("limit",))
    if after and offset:
        raise UsageError("{after} and {offset} cannot be combined", fields=("after", "offset"))
    conditions, params = filter_sql(db, actor, filters)
    if after:
        condition, anchor = _after(db, after, sort)
        conditions.append(condition)
        params.update(anchor)
    rows = db.rows(
        f"SELECT {_COLUMNS} {_FROM}{_where(conditions)} ORDER BY {_ORDER[sort]} LIMIT %(limit)s OFFSET %(offset)s",
        {**params, "limit": limit, "offset": offset},
    )
    return _records(db, rows)


def count_items(*, db: Reader, actor, filters: ItemFilters) -> int:
    conditions, params = filter_sql(db, actor, filters)
    return db.first(f"SELECT count(*) FROM item{_where(conditions)}", params)[0]


def get_item(*, db: Reader, ref: str) -> dict:
    return _records(db, [_find(db, ref)])[0]


# -- who is reading ---------------------------------------------------------------------------


@dataclass
class Actor:
    """The acting user as a read sees it; ``id`` None: not stored yet (a name met for the
    first time, which a read never creates)."""

    id: object
    username: str
    email: str | None
    is_admin: bool
    created_at: datetime | None

    @property
    def stored(self) -> bool:
        return self.id is not None


_USER = 'SELECT id, username, email, is_admin, created_at FROM "user" WHERE username = %(username)s'


class NotAtHead(Exception):
    """The database is not at this itemctl's schema head: the engine's route says why,
    or migrates the embedded default."""


def start(db: Reader, config: Config, schema_head: str) -> Actor:
    """Check the schema and find the actor: one query when the actor is named.

    Raises NotAtHead when the database is not at ``schema_head``. The rules are those of
    ``services/identity.py: resolve_actor`` for a command that only reads.
    """
    username, email = config.user, config.email
    if config.identity == "database":
        _at_head(db, "SELECT version_num FROM alembic_version", {}, schema_head)
        username = _login_or_impersonated(db, username)
    elif not username:
        from itemctl.core.config import DEV_EMAIL, DEV_USER, LOCAL

        if config.environment != LOCAL:
            raise no_identity(config.environment)
        username, email = DEV_USER, email or DEV_EMAIL
    if config.identity != "database":
        row = _at_head(
            db,
            'SELECT v.version_num, u.id, u.username, u.email, u.is_admin, u.created_at FROM alembic_version v'
            ' LEFT JOIN "user" u ON u.username = %(username)s',
            {"username": username},
            schema_head,
        )
        found = row[1:] if row[1] is not None else None
    else:
        found = db.first(_USER, {"username": username})
    if found is not None:
        return _actor(db, found)
    return _transient(username, email, from_login=config.identity == "database" and username != config.user)


def _at_head(db: Reader, sql: str, params: dict, schema_head: str) -> tuple:
    """The first row of ``sql``, a query on alembic_version whose first column is the
    revision; NotAtHead when the table is missing or holds another revision."""
    try:
        row = db.first(sql, params)
    except Exception as error:
        if _missing_table(error):
            raise NotAtHead from None
        raise
    if row is None or row[0] != schema_head:
        raise NotAtHead
    return row


def _missing_table(error: Exception) -> bool:
    return getattr(error, "sqlstate", None) == "42P01" or "no such table" in str(error)


def _actor(db: Reader, row: tuple) -> Actor:
    user_id, username, email, is_admin, created_at = row
    return Actor(db.id_value(user_id), username, email, bool(is_admin), db.time_value(created_at))


def _transient(username: str, email: str | None, *, from_login: bool) -> Actor:
    """An actor met for the first time: validated as its creation would be (exit 6 for a
    name or email that could never be stored), and never stored by a read."""
    from itemctl.models import UserCreate
    from itemctl.models.user import check_username
    from itemctl.services.common import validated

    try:
        check_username(username)
    except ValueError as error:
        raise invalid_actor_name(username, "the database login" if from_login else "{actor} or ITEMCTL_USER", error) from None
    user_in = validated(UserCreate, {"username": username, "email": email, "is_admin": False})
    return Actor(None, user_in.username, user_in.email, False, None)


def _login_or_impersonated(db: Reader, username: str | None) -> str:
    login = db.first("SELECT session_user")[0]
    if not username or username == login:
        return login
    own = db.first(_USER, {"username": login})
    if own is None or not own[3]:
        raise impersonation_refused(login, username, stored=own is not None)
    return username


# The identity rules' refusals, worded once for reads and for ``services/identity.py``.


def no_identity(environment: str) -> PermissionDenied:
    return PermissionDenied(
        f"no identity: this command needs an actor in environment {environment!r}",
        hint="pass {actor} USERNAME or set ITEMCTL_USER",
        fields=("actor",),
    )


def invalid_actor_name(username: str, source: str, error: ValueError) -> InvalidInput:
    from itemctl.core.text import shown

    return InvalidInput(f"invalid username {shown(username)} (from {source}): {error}", fields=("actor",))


def impersonation_refused(login: str, username: str, *, stored: bool) -> PermissionDenied:
    from itemctl.core.text import shown

    return PermissionDenied(
        f"only an admin may act as another user: the login {login!r} is "
        + ("not an admin" if stored else "not an itemctl user yet")
        + f", so it may not act as {shown(username)}",
        hint="drop {actor} (and ITEMCTL_USER) to act as the login, or log in as an admin",
        fields=("actor",),
    )


def whoami(*, db: Reader, actor: Actor) -> dict:
    """The actor as ``users whoami`` shows it, with the number of items it owns."""
    count = 0
    if actor.stored:
        count = db.first("SELECT count(*) FROM item WHERE owner_id = %(id)s", {"id": db.id_param(actor.id)})[0]
    return {
        "id": str(actor.id) if actor.id is not None else None,
        "username": actor.username,
        "email": actor.email,
        "is_admin": actor.is_admin,
        "created_at": json_time(actor.created_at),
        "item_count": count,
    }
