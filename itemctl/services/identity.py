"""Who is acting: the actor named by ``--as``/``ITEMCTL_USER``, created on first use."""

from __future__ import annotations

from sqlalchemy import exc
from sqlmodel import Session, select

from itemctl.core.config import DEV_EMAIL, DEV_USER, LOCAL
from itemctl.core.errors import ConflictError, PermissionDenied
from itemctl.models import User, UserCreate
from itemctl.services.common import validated


def resolve_actor(
    *, session: Session, username: str | None, email: str | None, environment: str
) -> User:
    """Return the acting user, creating a non-admin for a name seen for the first time.

    In ``local`` with no identity the actor is ``dev-user``; elsewhere no identity is
    permission denied. The email is used only when the user is created.
    """
    if not username:
        if environment != LOCAL:
            raise PermissionDenied(
                f"no identity: this command needs an actor in environment {environment!r}",
                hint="pass --as USERNAME or set ITEMCTL_USER",
            )
        username, email = DEV_USER, email or DEV_EMAIL
    actor = _by_username(session, username)
    if actor is not None:
        return actor
    user_in = validated(UserCreate, {"username": username, "email": email, "is_admin": False})
    try:
        # A savepoint: a concurrent first use of the same name must not spoil our transaction.
        with session.begin_nested():
            actor = User.model_validate(user_in)
            session.add(actor)
    except exc.IntegrityError:
        actor = _by_username(session, username)
        if actor is None:
            raise ConflictError(
                f"cannot create actor {username!r}: email {email!r} belongs to another user"
            ) from None
    return actor


def _by_username(session: Session, username: str) -> User | None:
    return session.exec(select(User).where(User.username == username)).first()
