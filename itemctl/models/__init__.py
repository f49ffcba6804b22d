"""Every model, so that ``SQLModel.metadata`` is complete once this is imported."""

from itemctl import KNOWN_REVISIONS, SCHEMA_HEAD  # the revision these models describe

from itemctl.models.audit import AuditEntry, AuditPublic
from itemctl.models.base import NAMING_CONVENTION, UTCDateTime
from itemctl.models.item import Item, ItemCreate, ItemImportRow, ItemPublic, ItemTag, ItemUpdate
from itemctl.models.tag import Tag, TagCreate, TagPublic
from itemctl.models.user import User, UserCreate, UserPublic, UserUpdate

__all__ = [
    "SCHEMA_HEAD",
    "KNOWN_REVISIONS",
    "AuditEntry",
    "AuditPublic",
    "NAMING_CONVENTION",
    "UTCDateTime",
    "Item",
    "ItemCreate",
    "ItemImportRow",
    "ItemPublic",
    "ItemTag",
    "ItemUpdate",
    "Tag",
    "TagCreate",
    "TagPublic",
    "User",
    "UserCreate",
    "UserPublic",
    "UserUpdate",
]
