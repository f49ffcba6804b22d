"""Tags: shared between items; a name is unique case-insensitively."""

from __future__ import annotations

import uuid
from functools import lru_cache

from pydantic import field_validator
from sqlalchemy import Index, func
from sqlmodel import Field, SQLModel

from itemctl.core.text import clean_text, fold_case, refuse_invisible
from itemctl.models.base import new_id

TAG_NAME_MAX = 64


@lru_cache(maxsize=4096)  # imports name the same few tags over and over
def clean_tag_name(value: str) -> str:
    """A tag name trimmed and checked: 1-64 characters, no ``,`` or ``;`` (the rules, once)."""
    value = value.strip()
    if not value:
        raise ValueError("a tag name must not be empty")
    if len(value) > TAG_NAME_MAX:
        raise ValueError(f"tag {value[:20]!r}... is longer than {TAG_NAME_MAX} characters")
    if "," in value or ";" in value:
        raise ValueError(f"tag {value!r} must not contain ',' or ';'")
    try:
        refuse_invisible(value)
        return clean_text(value)
    except ValueError as error:
        raise ValueError(f"tag {value!r} {error}") from None


_folded = lru_cache(maxsize=4096)(fold_case)


def clean_tag_names(values: list[str]) -> list[str]:
    """Each name cleaned; repeats (in any case) dropped, the first spelling kept."""
    seen: set[str] = set()
    names = []
    for value in values:
        if not isinstance(value, str):
            raise ValueError("tags must be strings")
        name = clean_tag_name(value)
        folded = _folded(name)
        if folded not in seen:
            seen.add(folded)
            names.append(name)
    return names


class TagBase(SQLModel):
    name: str

    @field_validator("name")
    @classmethod
    def _clean(cls, value: str) -> str:
        return clean_tag_name(value)


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
