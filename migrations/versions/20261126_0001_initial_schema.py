"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 06:06:01.518449

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0001'
down_revision: Union[str, None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('tag',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tag'))
    )
    op.create_index('uq_tag_lower_name', 'tag', [sa.literal_column('lower(name)')], unique=True)
    op.create_table('user',
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('email', sa.String(length=255), nullable=True),
    sa.Column('is_admin', sa.Boolean(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user')),
    sa.UniqueConstraint('email', name=op.f('uq_user_email')),
    sa.UniqueConstraint('username', name=op.f('uq_user_username'))
    )
    op.create_table('item',
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('description', sa.String(length=1000), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('owner_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['user.id'], name=op.f('fk_item_owner_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_item')),
    sa.UniqueConstraint('owner_id', 'title', name=op.f('uq_item_owner_id_title'))
    )
    op.create_index('ix_item_created_at_id', 'item', ['created_at', 'id'], unique=False)
    op.create_index('ix_item_owner_id_created_at', 'item', ['owner_id', 'created_at'], unique=False)
    op.create_table('item_tag',
    sa.Column('item_id', sa.Uuid(), nullable=False),
    sa.Column('tag_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['item.id'], name=op.f('fk_item_tag_item_id_item'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tag_id'], ['tag.id'], name=op.f('fk_item_tag_tag_id_tag'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('item_id', 'tag_id', name=op.f('pk_item_tag'))
    )
    op.create_index('ix_item_tag_tag_id', 'item_tag', ['tag_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_item_tag_tag_id', table_name='item_tag')
    op.drop_table('item_tag')
    op.drop_index('ix_item_owner_id_created_at', table_name='item')
    op.drop_index('ix_item_created_at_id', table_name='item')
    op.drop_table('item')
    op.drop_table('user')
    op.drop_index('uq_tag_lower_name', table_name='tag')
    op.drop_table('tag')
