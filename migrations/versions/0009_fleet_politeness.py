"""the procrastinate engine: per-host pace and leases shared by every worker

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('host_pace',
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('next_start', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('host', name=op.f('pk_host_pace'))
    )
    op.create_table('host_leases',
    sa.Column('holder', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('holder', name=op.f('pk_host_leases'))
    )
    op.create_index(op.f('ix_host_leases_host'), 'host_leases', ['host'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_host_leases_host'), table_name='host_leases')
    op.drop_table('host_leases')
    op.drop_table('host_pace')
