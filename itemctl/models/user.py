"""Users: they own items; admins may manage everyone."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from typing import Annotated

from pydantic import AfterValidator, field_validator
from sqlalchemy import Column, Index, func, text
from sqlmodel import Field, SQLModel

from itemctl.core.text import clean_text
from itemctl.models.base import UTCDateTime, new_id, utcnow

USERNAME_CHARACTERS = re.compile(r"[A-Za-z0-9._@-]+")
USERNAME_MAX = 255


def blank_is_none(value):
    """An empty email means none (``--email ""`` clears one); else NFC, no control characters."""
    if isinstance(value, str):
        return clean_text(value.strip()) if value.strip() else None
    return value


def check_email(value: str) -> str:
    """pydantic's EmailStr rule, with email-validator loaded only when an email is given:
    a command that reads users never pays for it."""
    from pydantic.networks import validate_email

    return validate_email(value)[1]


Email = Annotated[str, AfterValidator(check_email)]


def check_username(value: str) -> str:
    """1-255 characters of ASCII letters, digits and ``. _ @ -`` (the rule, once)."""
    if len(value) > USERNAME_MAX:
        raise ValueError(f"must be at most {USERNAME_MAX} characters")
    if not USERNAME_CHARACTERS.fullmatch(value):
        raise ValueError("may contain only ASCII letters, digits and . _ @ -")
    return value


class UserBase(SQLModel):
    username: str = Field(min_length=1, max_length=255, unique=True)
    email: Email | None = Field(default=None, max_length=255, unique=True)
    is_admin: bool = False

    _username = field_validator("username")(check_username)

    _blank_email = field_validator("email", mode="before")(blank_is_none)


class UserCreate(UserBase):
    pass


class UserUpdate(SQLModel):
    email: Email | None = Field(default=None, max_length=255)
    is_admin: bool | None = None

    _blank_email = field_validator("email", mode="before")(blank_is_none)


class User(UserBase, table=True):
    __tablename__ = "user"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(UTCDateTime(), nullable=False, server_default=text("CURRENT_TIMESTAMP")),
    )


# Emails are unique in any case (contract §1): "Alice@example.com" and "alice@…" are one.
Index("uq_user_lower_email", func.lower(User.__table__.c.email), unique=True)


class UserPublic(SQLModel):
    id: uuid.UUID | None  # None: an actor not created yet (``users whoami`` before a write)
    username: str
    email: str | None
    is_admin: bool
    created_at: datetime | None
    item_count: int = 0
