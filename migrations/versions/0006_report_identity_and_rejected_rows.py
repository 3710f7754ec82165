"""self-reports known by their parsed content; the department as written; rejected rows kept and chained

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 14:00:00

A report's identity becomes its parsed content (submission time, service, claimed day, text), so that the
same responses exported in another locale import once. The reports already stored get theirs here; when two
of them turn out to be one report (imported twice before this revision), the later keeps no identity and is
no longer read: it stays in its chain, which is not altered.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from monitor.reports import identity

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def _when(value: object) -> datetime:
    """A stored time as the store reads it (SQLite hands back text; times are stored in UTC)."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(when, datetime)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def upgrade() -> None:
    with op.batch_alter_table('self_reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('identity', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('department_text', sa.Text(), server_default='', nullable=False))
    conn = op.get_bind()
    seen: set[str] = set()
    updates = []
    for rid, submitted, reported, service_text, what in conn.execute(sa.text(
            "SELECT id, submitted_at, reported_for, service_text, what FROM self_reports ORDER BY id")):
        key = identity(submitted=_when(submitted), timestamp_text="", service_text=service_text or "",
                       reported=_when(reported), claimed_text="", what=what or "")
        if key not in seen:
            seen.add(key)
            updates.append({"i": rid, "k": key})
    if updates:
        conn.execute(sa.text("UPDATE self_reports SET identity = :k WHERE id = :i"), updates)
    with op.batch_alter_table('self_reports', schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f('uq_self_reports_identity'), ['identity'])

    op.create_table('rejected_reports',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('identity', sa.String(length=64), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('row', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('cells', sa.Text(), nullable=False),
    sa.Column('service_id', sa.String(length=63), nullable=True),
    sa.Column('service_text', sa.Text(), nullable=False),
    sa.Column('department_text', sa.Text(), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reported_for', sa.DateTime(timezone=True), nullable=True),
    sa.Column('placed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('what', sa.Text(), nullable=False),
    sa.Column('who', sa.Text(), nullable=False),
    sa.Column('link', sa.Text(), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('chain_seq', sa.BigInteger(), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=True),
    sa.Column('record_hash', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rejected_reports')),
    sa.UniqueConstraint('identity', name=op.f('uq_rejected_reports_identity'))
    )
    op.create_index(op.f('ix_rejected_reports_chain_seq'), 'rejected_reports', ['chain_seq'], unique=True)
    op.create_index(op.f('ix_rejected_reports_service_id'), 'rejected_reports', ['service_id'], unique=False)
    op.create_index(op.f('ix_rejected_reports_placed_at'), 'rejected_reports', ['placed_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_rejected_reports_placed_at'), table_name='rejected_reports')
    op.drop_index(op.f('ix_rejected_reports_service_id'), table_name='rejected_reports')
    op.drop_index(op.f('ix_rejected_reports_chain_seq'), table_name='rejected_reports')
    op.drop_table('rejected_reports')
    op.execute("DELETE FROM chain_heads WHERE name = 'rejected_reports'")
    with op.batch_alter_table('self_reports', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_self_reports_identity'), type_='unique')
        batch_op.drop_column('department_text')
        batch_op.drop_column('identity')
