"""Every model, so that ``SQLModel.metadata`` is complete once this is imported."""

# The Alembic revision these models describe. Commands compare it with the database's
# alembic_version in one cheap query, without loading Alembic; a test keeps it equal to
# the newest revision in migrations/versions.
SCHEMA_HEAD = "0004"
# Every revision this itemctl ships, oldest first: a database at any other revision was
# migrated by a newer itemctl. The same test keeps this equal to migrations/versions.
KNOWN_REVISIONS = ("0001", "0002", "0003", "0004")

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
