"""self-reports and hash chains

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 21:22:48.487478
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chain_heads',
    sa.Column('name', sa.String(length=16), nullable=False),
    sa.Column('last_id', sa.BigInteger(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_chain_heads'))
    )
    op.create_table('self_reports',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('row_hash', sa.String(length=64), nullable=False),
    sa.Column('service_id', sa.String(length=64), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reported_for', sa.DateTime(timezone=True), nullable=False),
    sa.Column('what', sa.Text(), nullable=False),
    sa.Column('who', sa.Text(), nullable=False),
    sa.Column('email', sa.Text(), nullable=False),
    sa.Column('link', sa.Text(), nullable=False),
    sa.Column('service_text', sa.Text(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_self_reports_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_self_reports')),
    sa.UniqueConstraint('row_hash', name=op.f('uq_self_reports_row_hash'))
    )
    with op.batch_alter_table('self_reports', schema=None) as batch_op:
        batch_op.create_index('ix_self_reports_service_reported', ['service_id', 'reported_for'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('self_reports', schema=None) as batch_op:
        batch_op.drop_index('ix_self_reports_service_reported')

    op.drop_table('self_reports')
    op.drop_table('chain_heads')
