"""The scale bench's wire counter: what it says a client sent is what the client sent."""

from __future__ import annotations

import psycopg

from bench.pgcount import PgCounter


def _through(relay: PgCounter, db: str, **kw: bool) -> psycopg.Connection:
    name = db.rsplit("/", 1)[1]
    return psycopg.connect(f"postgresql://postgres@127.0.0.1:{relay.port}/{name}?sslmode=disable&gssencmode=disable",
                           **kw)


def test_the_relay_counts_statements_and_round_trips_as_sent(pg_url: str) -> None:
    with PgCounter() as relay:
        with _through(relay, pg_url) as conn:  # a transaction: BEGIN, three statements, COMMIT
            assert (relay.counts.statements, relay.counts.round_trips) == (0, 0)  # connecting sends none
            for i in range(3):
                assert conn.execute("SELECT %s::int", (i,)).fetchone() == (i,)
            conn.commit()
            assert (relay.counts.statements, relay.counts.round_trips) == (5, 5)
        with _through(relay, pg_url, autocommit=True) as conn:
            with conn.pipeline():  # two statements in one round trip
                conn.execute("SELECT 1")
                conn.execute("SELECT 2")
            # one simple query message (two statements in it): one statement and one round trip as counted
            conn.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
        assert (relay.counts.statements, relay.counts.round_trips, relay.counts.connections) == (9, 8, 2)
