"""where a check's capture comes from: live ("") or an archive, kept through retention

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 14:20:00

Captures read from web archives (a CDX server, WARC files) are recorded as checks at their capture time,
marked with their source, so that an audit can say which verdicts rest on them. A check's source is chained
when set; live checks hash as before. Retention summaries count the archive captures of their day.
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


def downgrade() -> None:
    with op.batch_alter_table('coverage_days', schema=None) as batch_op:
        batch_op.drop_column('archived')
    with op.batch_alter_table('checks', schema=None) as batch_op:
        batch_op.drop_column('source')
