"""chain positions (one chain order under many writers), corrections of changes, kept aggregates

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 12:00:00

Existing records get their chain position by following the chain itself (each record names the hash of
the one before it), so a chain appended out of id order by two writers is numbered in its true order;
records the walk cannot reach (an altered chain) are numbered after it, in id order, and `monitor verify`
still reports where the chain breaks.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

CHAINS = ("versions", "changes")


def _number(name: str) -> int:
    conn = op.get_bind()
    rows = conn.execute(sa.text(f"SELECT id, prev_hash, record_hash FROM {name} ORDER BY id")).all()
    following: dict[str, list[int]] = {}
    hashes = {}
    for rid, prev, digest in rows:
        following.setdefault(prev or "", []).append(rid)
        hashes[rid] = digest
    order: list[int] = []
    seen: set[int] = set()
    prev = ""
    while following.get(prev):
        rid = next((r for r in following[prev] if r not in seen), None)
        if rid is None:
            break
        order.append(rid)
        seen.add(rid)
        prev = hashes[rid] or ""
    order += [rid for rid, _prev, _digest in rows if rid not in seen]
    if order:
        conn.execute(sa.text(f"UPDATE {name} SET chain_seq = :seq WHERE id = :id"),
                     [{"seq": seq, "id": rid} for seq, rid in enumerate(order, start=1)])
    return len(order)


def upgrade() -> None:
    # plain ADD COLUMN and CREATE INDEX: SQLite does both in place (a batch copy of versions would have to drop
    # a table that checks and changes still refer to, which foreign keys forbid)
    op.create_table('aggregates',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('counts', sa.Text(), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', 'key', name=op.f('pk_aggregates'))
    )
    op.add_column('chain_heads', sa.Column('last_seq', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('changes', sa.Column('supersedes', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                                       nullable=True))
    op.create_index(op.f('ix_changes_supersedes'), 'changes', ['supersedes'], unique=False)
    for name in CHAINS:
        op.add_column(name, sa.Column('chain_seq', sa.BigInteger(), nullable=True))
        count = _number(name)
        op.get_bind().execute(sa.text("UPDATE chain_heads SET last_seq = :n WHERE name = :name"),
                              {"n": count, "name": name})
        op.create_index(op.f(f'ix_{name}_chain_seq'), name, ['chain_seq'], unique=True)


def downgrade() -> None:
    for name in CHAINS:
        op.drop_index(op.f(f'ix_{name}_chain_seq'), table_name=name)
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_column('chain_seq')
    op.drop_index(op.f('ix_changes_supersedes'), table_name='changes')
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.drop_column('supersedes')
    with op.batch_alter_table('chain_heads', schema=None) as batch_op:
        batch_op.drop_column('last_seq')
    op.drop_table('aggregates')
