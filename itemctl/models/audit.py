"""The audit trail: one entry per committed change, kept when the user it names is gone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Identity, Index, Integer, Text
from sqlmodel import Field, SQLModel

from itemctl.models.base import UTCDateTime, utcnow


class AuditEntry(SQLModel, table=True):
    """Names are copied, not referenced: an entry outlives the user and item it names."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    # SQLite numbers rows itself only for an INTEGER primary key.
    id: int | None = Field(
        default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), Identity(), primary_key=True)
    )
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    actor: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    db_role: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    action: str = Field(sa_column=Column(Text, nullable=False))
    target: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class AuditPublic(SQLModel):
    id: int  # stable: `audit list -o id` prints it
    at: datetime
    actor: str | None
    db_role: str | None
    action: str
    target: str | None
    details: dict[str, Any]
