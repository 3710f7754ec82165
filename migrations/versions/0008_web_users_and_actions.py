"""the web interface: accounts, and what people did through it (chained)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 14:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('users',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('disabled', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_users'))
    )
    op.create_table('web_actions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('who', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('chain_seq', sa.BigInteger(), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=True),
    sa.Column('record_hash', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_web_actions'))
    )
    op.create_index(op.f('ix_web_actions_chain_seq'), 'web_actions', ['chain_seq'], unique=True)
    op.create_index('ix_web_actions_target', 'web_actions', ['target'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_web_actions_target', table_name='web_actions')
    op.drop_index(op.f('ix_web_actions_chain_seq'), table_name='web_actions')
    op.drop_table('web_actions')
    op.execute("DELETE FROM chain_heads WHERE name = 'web_actions'")
    op.drop_table('users')
