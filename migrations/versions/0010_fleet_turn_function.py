"""the procrastinate engine: a turn at a host taken in one round trip (PostgreSQL only)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 20:00:00

`monitor_take_turn` does what SqlFleet.take_turn did in seven statements: lock the host's pace row, count the
leases out, and take one if a slot is free and the pause has run. Each statement of a PL/pgSQL function sees
what committed before it started, so the count after the lock sees every lease taken before it.
"""

from __future__ import annotations

from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

TAKE_TURN = """
CREATE OR REPLACE FUNCTION monitor_take_turn(p_host varchar, p_holder varchar, p_concurrency integer,
                                             p_delay_s double precision, p_lease_s double precision)
RETURNS double precision LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_next timestamptz;
    v_now timestamptz;
    v_busy integer;
BEGIN
    INSERT INTO host_pace (host, next_start) VALUES (p_host, clock_timestamp()) ON CONFLICT (host) DO NOTHING;
    SELECT next_start INTO v_next FROM host_pace WHERE host = p_host FOR UPDATE;
    v_now := clock_timestamp();
    SELECT count(*) INTO v_busy FROM host_leases WHERE host = p_host AND expires_at > v_now;
    IF v_busy >= p_concurrency THEN
        RETURN -1;  -- every slot is out
    END IF;
    IF v_next > v_now THEN
        RETURN extract(epoch FROM v_next - v_now);  -- the pause still to run
    END IF;
    DELETE FROM host_leases WHERE host = p_host AND expires_at <= v_now;  -- left by killed workers
    INSERT INTO host_leases (holder, host, expires_at)
        VALUES (p_holder, p_host, v_now + make_interval(secs => p_lease_s));
    UPDATE host_pace SET next_start = v_now + make_interval(secs => p_delay_s) WHERE host = p_host;
    RETURN 0;
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(TAKE_TURN)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS monitor_take_turn(varchar, varchar, integer, double precision, "
                   "double precision)")
