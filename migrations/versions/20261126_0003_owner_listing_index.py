"""owner listing index covers the id tiebreak

`items list --owner U` orders by (created_at, id); with id in the index the first page
of a user's items is an index range scan instead of a walk through everyone's items.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 07:40:00

"""
from typing import Sequence, Union

from alembic import op

revision: str = "0003"
down_revision: Union[str, None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index("ix_item_owner_id_created_at_id", "item", ["owner_id", "created_at", "id"], unique=False)
    op.drop_index("ix_item_owner_id_created_at", table_name="item")


def downgrade() -> None:
    op.create_index("ix_item_owner_id_created_at", "item", ["owner_id", "created_at"], unique=False)
    op.drop_index("ix_item_owner_id_created_at_id", table_name="item")
