"""Items: owned by a user, tagged with any number of tags."""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PydanticField
from sqlalchemy import Column, ForeignKey, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from itemctl.core.text import clean_text
from itemctl.models.base import UTCDateTime, new_id, utcnow
from itemctl.models.tag import clean_tag_names
from itemctl.models.user import check_username

TITLE_MAX = 255
DESCRIPTION_MAX = 1000


def _title(value):
    """Trimmed, NFC, no control character (contract §1); lengths are checked after this."""
    return clean_text(value.strip()) if isinstance(value, str) else value


def _description(value):
    """Empty means none; NFC; newlines and tabs allowed, ``\r\n`` stored as ``\n``."""
    if value == "":
        return None
    return clean_text(value, multiline=True) if isinstance(value, str) else value


class ItemBase(SQLModel):
    title: str = Field(min_length=1, max_length=TITLE_MAX)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)

    _title = field_validator("title", mode="before")(_title)
    _description = field_validator("description", mode="before")(_description)


class ItemCreate(ItemBase):
    tags: list[str] = []

    _valid_tags = field_validator("tags")(clean_tag_names)


class ItemImportRow(BaseModel):
    """One record of an import file: unknown fields are errors, tags a list or "a;b".

    A plain pydantic model rather than an ItemBase: it is validated once per row of
    files with millions of rows, and SQLModel's machinery doubles that cost. The rules
    are the same functions and limits as ItemBase's.
    """

    model_config = ConfigDict(extra="forbid")

    title: str = PydanticField(min_length=1, max_length=TITLE_MAX)
    description: str | None = PydanticField(default=None, max_length=DESCRIPTION_MAX)
    owner: str | None = None
    tags: list[str] = []

    _title = field_validator("title", mode="before")(_title)
    _description = field_validator("description", mode="before")(_description)

    @field_validator("tags", mode="before")
    @classmethod
    def _split_tags(cls, value):
        if value is None:
            return []
        if isinstance(value, str):
            return [part for part in value.split(";") if part.strip()]
        return value

    _valid_tags = field_validator("tags")(clean_tag_names)

    @field_validator("owner", mode="before")
    @classmethod
    def _owner(cls, value):
        return _import_owner(value) if isinstance(value, str) else value


# A file names few owners and tags many times over: each distinct value is checked once
# (the caches are bounded; a value that fails raises again every time).
@lru_cache(maxsize=4096)
def _import_owner(value: str) -> str | None:
    value = value.strip()
    return check_username(value) if value else None


# The fields `items import` reads, in the order CSV output writes them: defined once, by
# the row model itself.
IMPORT_FIELDS = tuple(ItemImportRow.model_fields)


class ItemUpdate(SQLModel):
    title: str | None = Field(default=None, min_length=1, max_length=TITLE_MAX)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)

    _title = field_validator("title", mode="before")(_title)
    _description = field_validator("description", mode="before")(_description)


class Item(ItemBase, table=True):
    __tablename__ = "item"
    __table_args__ = (
        UniqueConstraint("owner_id", "title"),
        Index("ix_item_created_at_id", "created_at", "id"),
        Index("ix_item_owner_id_created_at_id", "owner_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    owner_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("user.id", ondelete="CASCADE"), nullable=False)
    )
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(UTCDateTime(), nullable=False, server_default=text("CURRENT_TIMESTAMP")),
    )
    updated_at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(UTCDateTime(), nullable=False, server_default=text("CURRENT_TIMESTAMP")),
    )


class ItemTag(SQLModel, table=True):
    """The link table; deleting either side removes only the link."""

    __tablename__ = "item_tag"
    __table_args__ = (Index("ix_item_tag_tag_id", "tag_id"),)

    item_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("item.id", ondelete="CASCADE"), primary_key=True)
    )
    tag_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True)
    )


class ItemPublic(SQLModel):
    id: uuid.UUID
    title: str
    description: str | None
    owner: str
    tags: list[str]
    created_at: datetime
    updated_at: datetime
