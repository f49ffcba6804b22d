"""Tags: shared between items; a name is unique case-insensitively."""

from __future__ import annotations

import uuid

from pydantic import field_validator
from sqlalchemy import Index, func
from sqlmodel import Field, SQLModel

from itemctl.models.base import new_id

TAG_NAME_MAX = 64


class TagBase(SQLModel):
    name: str = Field(min_length=1, max_length=TAG_NAME_MAX)

    @field_validator("name", mode="before")
    @classmethod
    def _trim_and_check(cls, value):
        if isinstance(value, str):
            value = value.strip()
            if "," in value or ";" in value:
                raise ValueError("must not contain ',' or ';'")
            if "\x00" in value:
                raise ValueError("must not contain NUL characters")
        return value


class TagCreate(TagBase):
    pass


class Tag(TagBase, table=True):
    __tablename__ = "tag"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)


# The first spelling is kept; "ops" and "Ops" are the same tag.
Index("uq_tag_lower_name", func.lower(Tag.__table__.c.name), unique=True)


class TagPublic(SQLModel):
    name: str
    item_count: int = 0
