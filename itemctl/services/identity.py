"""Who is acting: the actor named by ``--as``/``ITEMCTL_USER``, created on first use."""

from __future__ import annotations

from sqlalchemy import exc
from sqlmodel import Session, select

from itemctl.core.config import DEV_EMAIL, DEV_USER, LOCAL
from itemctl.core.errors import ConflictError, PermissionDenied
from itemctl.models import User, UserCreate
from itemctl.models.user import check_username
from itemctl.services.common import validated
from itemctl.services.reads import impersonation_refused, invalid_actor_name, no_identity


# session.info key: the id of an actor this transaction created on first use.
ACTOR_CREATED = "itemctl.actor_created"
# session.info key: the login's own username when it acts as another user (--as).
IMPERSONATED_BY = "itemctl.impersonated_by"


def created_in_this_command(session: Session, user: User) -> bool:
    """True when ``user`` is an actor that this very command created on first use."""
    return session.info.get(ACTOR_CREATED) == user.id


def resolve_actor(
    *,
    session: Session,
    username: str | None,
    email: str | None,
    environment: str,
    create: bool = True,
    from_login: bool = False,
) -> User:
    """Return the acting user, creating a non-admin for a name seen for the first time.

    In ``local`` with no identity the actor is ``dev-user``; elsewhere no identity is
    permission denied. The email is used only when the user is created. Without
    ``create`` (a read-only command) an unknown name acts as a non-admin that is never
    stored: a typo in ``--as`` leaves no user behind.

    ``from_login`` (identity from the database login): the actor is the user named as the
    connection's ``session_user``; another ``username`` is impersonation, allowed only
    when the login's own user is an admin.
    """
    source = "{actor} or ITEMCTL_USER"
    if from_login:
        given = username
        username = _login_or_impersonated(session, username)
        if username != given:
            source = "the database login"
    if not username:
        if environment != LOCAL:
            raise no_identity(environment)
        username, email = DEV_USER, email or DEV_EMAIL
    try:
        check_username(username)
    except ValueError as error:
        raise invalid_actor_name(username, source, error) from None
    actor = _by_username(session, username)
    if actor is not None:
        return actor
    user_in = validated(UserCreate, {"username": username, "email": email, "is_admin": False})
    if not create:
        return User.model_validate(user_in)  # transient: not added to the session
    try:
        # A savepoint: a concurrent first use of the same name must not spoil our transaction.
        with session.begin_nested():
            actor = User.model_validate(user_in)
            session.add(actor)
        session.info[ACTOR_CREATED] = actor.id
    except exc.IntegrityError:
        actor = _by_username(session, username)
        if actor is None:
            raise ConflictError(
                f"cannot create actor {username!r}: email {email!r} belongs to another user"
            ) from None
    return actor


def _login_or_impersonated(session: Session, username: str | None) -> str:
    from itemctl.services.audit import database_role

    login = database_role(session)
    if not username or username == login:
        return login
    own = _by_username(session, login)
    if own is None or not own.is_admin:
        raise impersonation_refused(login, username, stored=own is not None)
    session.info[IMPERSONATED_BY] = login
    return username


def _by_username(session: Session, username: str) -> User | None:
    return session.exec(select(User).where(User.username == username)).first()


# -- what the actor may do (contract section 3) ------------------------------------------


def require_admin(actor: User, action: str) -> None:
    """Raise PermissionDenied (exit 5) unless the actor is an admin."""
    if not actor.is_admin:
        raise PermissionDenied(f"only an admin may {action} (you are {actor.username!r}, not an admin)")


def require_owner_or_admin(actor: User, owner_id, action: str) -> None:
    """Users act on their own items; admins on anyone's."""
    if owner_id != actor.id and not actor.is_admin:
        raise PermissionDenied(
            f"only the owner or an admin may {action} (you are {actor.username!r}, not an admin)"
        )


def admin_exists(session: Session) -> bool:
    return session.exec(select(User.id).where(User.is_admin).limit(1)).first() is not None
