"""chains over checks, self-reports and coverage summaries; chain bases and the retention log

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 13:00:00

Every record a verdict depends on is chained from now on. The records already stored are chained here, in
the order they were written (their ids); coverage summaries become one record per page, day and pruning
run (never updated again), so that they can be chained too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from monitor.store.chain import CHAINED, record_hash

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

BATCH = 5000


def _chain(name: str, fields: tuple[str, ...]) -> None:
    """Chain the records already stored, in the order they were written."""
    conn = op.get_bind()
    cols = ", ".join(("id", *fields))
    prev, seq, last = "", 0, None
    while True:
        rows = conn.execute(sa.text(f"SELECT {cols} FROM {name} WHERE id > :last ORDER BY id LIMIT {BATCH}"),
                            {"last": last if last is not None else -1}).mappings().all()
        if not rows:
            break
        updates: list[dict[str, Any]] = []
        for row in rows:
            seq += 1
            values = dict(row)
            for key in ("started_at", "submitted_at", "reported_for", "first_success_at", "last_success_at"):
                if isinstance(values.get(key), str):  # SQLite hands back text where no column type applies
                    values[key] = datetime.fromisoformat(values[key])
            digest = record_hash(prev, name, values)
            updates.append({"i": row["id"], "s": seq, "p": prev, "h": digest})
            prev, last = digest, row["id"]
        conn.execute(sa.text(f"UPDATE {name} SET chain_seq = :s, prev_hash = :p, record_hash = :h WHERE id = :i"),
                     updates)
    conn.execute(sa.text("DELETE FROM chain_heads WHERE name = :n"), {"n": name})
    conn.execute(sa.text("INSERT INTO chain_heads (name, last_id, last_seq, last_hash, base_seq, base_hash) "
                         "VALUES (:n, :i, :s, :h, 0, '')"), {"n": name, "i": last or 0, "s": seq, "h": prev})


def _chain_columns(name: str) -> None:
    op.add_column(name, sa.Column('chain_seq', sa.BigInteger(), nullable=True))
    op.add_column(name, sa.Column('prev_hash', sa.String(length=64), nullable=True))
    op.add_column(name, sa.Column('record_hash', sa.String(length=64), nullable=True))


def upgrade() -> None:
    op.add_column('chain_heads', sa.Column('base_seq', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('chain_heads', sa.Column('base_hash', sa.String(length=64), server_default='', nullable=False))
    op.create_table('retention_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('chain', sa.String(length=16), nullable=False),
    sa.Column('base_seq', sa.BigInteger(), nullable=False),
    sa.Column('base_hash', sa.String(length=64), nullable=False),
    sa.Column('removed', sa.BigInteger(), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('chain_seq', sa.BigInteger(), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=True),
    sa.Column('record_hash', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retention_log'))
    )
    op.create_index(op.f('ix_retention_log_chain_seq'), 'retention_log', ['chain_seq'], unique=True)

    # coverage summaries: one record per page, day and pruning run, with an id (the old key was page and day)
    op.rename_table('coverage_days', 'coverage_days_old')
    if op.get_bind().dialect.name == "postgresql":  # constraint names are the schema's: free them for the new
        op.execute("ALTER TABLE coverage_days_old DROP CONSTRAINT fk_coverage_days_page_id_pages")
        op.execute("ALTER TABLE coverage_days_old DROP CONSTRAINT pk_coverage_days")
    op.create_table('coverage_days',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('page_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('checks', sa.Integer(), nullable=False),
    sa.Column('successes', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Text(), nullable=False),
    sa.Column('first_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('slow', sa.Integer(), nullable=False),
    sa.Column('chain_seq', sa.BigInteger(), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=True),
    sa.Column('record_hash', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['page_id'], ['pages.id'], name=op.f('fk_coverage_days_page_id_pages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coverage_days'))
    )
    op.execute("INSERT INTO coverage_days (page_id, day, checks, successes, failures, first_success_at, "
               "last_success_at, slow) SELECT page_id, day, checks, successes, failures, first_success_at, "
               "last_success_at, slow FROM coverage_days_old ORDER BY page_id, day")
    op.drop_table('coverage_days_old')
    op.create_index('ix_coverage_days_page_day', 'coverage_days', ['page_id', 'day'], unique=False)
    op.create_index(op.f('ix_coverage_days_chain_seq'), 'coverage_days', ['chain_seq'], unique=True)

    for name in ('checks', 'self_reports'):
        _chain_columns(name)
        op.create_index(op.f(f'ix_{name}_chain_seq'), name, ['chain_seq'], unique=True)
    for name in ('checks', 'self_reports', 'coverage_days'):
        _chain(name, CHAINED[name])


def downgrade() -> None:
    for name in ('checks', 'self_reports'):
        op.drop_index(op.f(f'ix_{name}_chain_seq'), table_name=name)
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_column('record_hash')
            batch_op.drop_column('prev_hash')
            batch_op.drop_column('chain_seq')
    op.drop_index(op.f('ix_coverage_days_chain_seq'), table_name='coverage_days')
    op.drop_index('ix_coverage_days_page_day', table_name='coverage_days')

    op.rename_table('coverage_days', 'coverage_days_new')
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE coverage_days_new DROP CONSTRAINT fk_coverage_days_page_id_pages")
        op.execute("ALTER TABLE coverage_days_new DROP CONSTRAINT pk_coverage_days")
    op.create_table('coverage_days',
    sa.Column('page_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('checks', sa.Integer(), nullable=False),
    sa.Column('successes', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Text(), nullable=False),
    sa.Column('first_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('slow', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['page_id'], ['pages.id'], name='fk_coverage_days_page_id_pages'),
    sa.PrimaryKeyConstraint('page_id', 'day', name='pk_coverage_days')
    )
    op.execute("INSERT INTO coverage_days SELECT page_id, day, sum(checks), sum(successes), max(failures), "
               "min(first_success_at), max(last_success_at), sum(slow) FROM coverage_days_new GROUP BY page_id, day")
    op.drop_table('coverage_days_new')
    op.drop_index(op.f('ix_retention_log_chain_seq'), table_name='retention_log')
    op.drop_table('retention_log')
    with op.batch_alter_table('chain_heads', schema=None) as batch_op:
        batch_op.drop_column('base_hash')
        batch_op.drop_column('base_seq')
