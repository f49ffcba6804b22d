"""Users: read, create, update, delete; admin rights and the last-admin rule."""

from __future__ import annotations


from sqlalchemy import delete, func
from sqlmodel import Session, select

from itemctl.core.text import shown
from itemctl.core.errors import ConflictError, NotFoundError
from itemctl.models import Item, User, UserCreate, UserPublic, UserUpdate
from itemctl.services import audit
from itemctl.services.common import Notify, conflict_on_duplicate, quiet
from itemctl.services.identity import admin_exists, created_in_this_command, require_admin


def get_user(*, session: Session, username: str) -> User:
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFoundError(f"user {shown(username)} not found")
    return user


def _item_count(session: Session, user: User) -> int:
    return session.exec(select(func.count()).select_from(Item).where(Item.owner_id == user.id)).one()


def public_user(*, session: Session, user: User) -> UserPublic:
    """A user as shown; one not created yet (an actor a read-only command met for the first
    time) has no id and no creation time, rather than ones that will never be stored."""
    from sqlalchemy import inspect

    if not inspect(user).persistent:
        return UserPublic.model_validate(user, update={"id": None, "created_at": None, "item_count": 0})
    return UserPublic.model_validate(user, update={"item_count": _item_count(session, user)})


def usernames_starting_with(*, session: Session, prefix: str, limit: int) -> list[str]:
    """Usernames that begin with ``prefix`` (any case), in the order ``users list`` shows
    them: what a shell completes."""
    statement = (
        select(User.username)
        .where(func.lower(User.username).startswith(prefix.lower(), autoescape=True))
        .order_by(User.username)
        .limit(limit)
    )
    return list(session.exec(statement).all())


def list_users(*, session: Session, admins_only: bool = False) -> list[UserPublic]:
    """Every user with an item count, in one query."""
    statement = (
        select(User, func.count(Item.id))
        .outerjoin(Item, Item.owner_id == User.id)
        .group_by(User.id)
        .order_by(User.username)
    )
    if admins_only:
        statement = statement.where(User.is_admin)
    return [
        UserPublic.model_validate(user, update={"item_count": count})
        for user, count in session.exec(statement).all()
    ]


def _require_user_admin(session: Session, actor: User, action: str, *, grants_admin: bool) -> None:
    """Admins manage users. Bootstrap: while there is no admin, anyone may make one."""
    if actor.is_admin:
        return
    if grants_admin and not admin_exists(session):
        return
    require_admin(actor, action)


def create_user(*, session: Session, actor: User, user_in: UserCreate) -> UserPublic:
    """Admins only (bootstrap aside). ``--as root users create root --admin`` creates root
    as asked, although naming the actor created it a moment earlier in this transaction."""
    _require_user_admin(session, actor, "create users", grants_admin=user_in.is_admin)
    if user_in.username == actor.username and created_in_this_command(session, actor):
        user = actor
        user.sqlmodel_update(user_in.model_dump(exclude_unset=True))
    elif session.exec(select(User.id).where(User.username == user_in.username)).first():
        raise ConflictError(f"user {user_in.username!r} already exists")
    else:
        user = User.model_validate(user_in)
    with conflict_on_duplicate(session, f"email {user_in.email!r} belongs to another user"):
        session.add(user)
        session.flush()
    audit.record(session, actor=actor, action="users.create", target=user.username,
                 details={"email": user.email, "is_admin": user.is_admin})
    return public_user(session=session, user=user)


def _lock_admins(session: Session) -> list[User]:
    """The admins, locked: two concurrent demotions cannot both leave none behind."""
    statement = select(User).where(User.is_admin)
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    return list(session.exec(statement).all())


def _refuse_last_admin(session: Session, user: User, action: str) -> None:
    if user.is_admin and [a.id for a in _lock_admins(session)] == [user.id]:
        raise ConflictError(f"cannot {action} {user.username!r}: it is the last admin")


def update_user(
    *, session: Session, actor: User, username: str, user_in: UserUpdate, on_notice: Notify = quiet
) -> UserPublic:
    """Admins only (bootstrap: granting admin while none exists). A change that changes
    nothing writes nothing and says so."""
    changes = user_in.model_dump(exclude_unset=True)
    grants = changes.get("is_admin") is True and set(changes) == {"is_admin"}
    _require_user_admin(session, actor, "update users", grants_admin=grants)
    user = get_user(session=session, username=username)
    changes = {k: v for k, v in changes.items() if getattr(user, k) != v}
    if not changes:
        on_notice(f"user {user.username!r} unchanged: nothing to change; nothing was written")
        return public_user(session=session, user=user)
    if changes.get("is_admin") is False:
        _refuse_last_admin(session, user, "demote")
    user.sqlmodel_update(changes)
    with conflict_on_duplicate(session, f"email {user.email!r} belongs to another user"):
        session.add(user)
        session.flush()
    audit.record(session, actor=actor, action="users.update", target=user.username, details={"changes": changes})
    return public_user(session=session, user=user)


def user_to_delete(*, session: Session, actor: User, username: str) -> UserPublic:
    _require_user_admin(session, actor, "delete users", grants_admin=False)
    user = get_user(session=session, username=username)
    _refuse_last_admin(session, user, "delete")
    return public_user(session=session, user=user)


def delete_user(*, session: Session, actor: User, username: str) -> UserPublic:
    """Admins only; the user's items (and their tag links) go with it, tags stay."""
    gone = user_to_delete(session=session, actor=actor, username=username)
    session.execute(delete(User).where(User.id == gone.id))
    audit.record(session, actor=actor, action="users.delete", target=gone.username,
                 details={"items_deleted": gone.item_count, "was_admin": gone.is_admin})
    return gone


