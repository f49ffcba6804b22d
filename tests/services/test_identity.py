"""Who is acting: resolved inside the command's transaction."""

from __future__ import annotations

import pytest
from sqlmodel import select

from itemctl.core.errors import InvalidInput, PermissionDenied
from itemctl.models import User
from itemctl.services.identity import resolve_actor


def test_local_without_identity_acts_as_dev_user(session):
    actor = resolve_actor(session=session, username=None, email=None, environment="local")
    assert (actor.username, actor.email, actor.is_admin) == ("dev-user", "dev-user@example.com", False)


def test_other_environments_need_an_identity(session):
    with pytest.raises(PermissionDenied) as raised:
        resolve_actor(session=session, username=None, email=None, environment="production")
    assert raised.value.exit_code == 5


def test_a_new_actor_is_created_once_as_a_non_admin(session):
    first = resolve_actor(session=session, username="alice", email="alice@example.com", environment="production")
    again = resolve_actor(session=session, username="alice", email=None, environment="production")
    assert first.id == again.id and not first.is_admin and first.email == "alice@example.com"
    assert len(session.exec(select(User).where(User.username == "alice")).all()) == 1


@pytest.mark.parametrize("bad", ["has space", "x" * 256, "semi;colon"])
def test_an_invalid_username_is_invalid_input(session, bad):
    with pytest.raises(InvalidInput) as raised:
        resolve_actor(session=session, username=bad, email=None, environment="local")
    assert "username" in raised.value.message
