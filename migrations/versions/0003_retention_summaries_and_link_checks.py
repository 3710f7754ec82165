"""retention summaries and link checks

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 21:38:27.665813
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('coverage_days',
    sa.Column('page_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('checks', sa.Integer(), nullable=False),
    sa.Column('successes', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Text(), nullable=False),
    sa.Column('first_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('slow', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['page_id'], ['pages.id'], name=op.f('fk_coverage_days_page_id_pages')),
    sa.PrimaryKeyConstraint('page_id', 'day', name=op.f('pk_coverage_days'))
    )
    op.create_table('link_checks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('page_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['page_id'], ['pages.id'], name=op.f('fk_link_checks_page_id_pages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_link_checks'))
    )
    with op.batch_alter_table('link_checks', schema=None) as batch_op:
        batch_op.create_index('ix_link_checks_page_checked', ['page_id', 'checked_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('link_checks', schema=None) as batch_op:
        batch_op.drop_index('ix_link_checks_page_checked')

    op.drop_table('link_checks')
    op.drop_table('coverage_days')
