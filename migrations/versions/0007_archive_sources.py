"""where a check's capture comes from: live ("") or an archive, kept through retention

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 14:20:00

Captures read from web archives (a CDX server, WARC files) are recorded as checks at their capture time,
marked with their source, so that an audit can say which verdicts rest on them. A check's source is chained
when set; live checks hash as before. Retention summaries count the archive captures of their day, and a
ledger of the captures recorded (page, capture time) outlives the check rows, so a capture is imported once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('checks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=200), server_default='', nullable=False))
    with op.batch_alter_table('coverage_days', schema=None) as batch_op:
        batch_op.add_column(sa.Column('archived', sa.Integer(), nullable=True))
    op.create_table('archive_captures',
    sa.Column('page_id', sa.Integer(), nullable=False),
    sa.Column('captured_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['page_id'], ['pages.id'], name=op.f('fk_archive_captures_page_id_pages')),
    sa.PrimaryKeyConstraint('page_id', 'captured_at', name=op.f('pk_archive_captures'))
    )


def downgrade() -> None:
    op.drop_table('archive_captures')
    with op.batch_alter_table('coverage_days', schema=None) as batch_op:
        batch_op.drop_column('archived')
    with op.batch_alter_table('checks', schema=None) as batch_op:
        batch_op.drop_column('source')
