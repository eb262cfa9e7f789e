"""One elt run at a time, whoever starts it: a PostgreSQL advisory lock in the warehouse.

The lock lives on a dedicated connection held for the whole run; if the process dies, the
connection closes and PostgreSQL releases the lock, so a crash never leaves it stuck.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg

from haven.errors import HavenError
from haven.warehouse.connection import connect

LOCK_NAME = "haven.elt"


class RunInProgress(HavenError):
    """Another run holds the lock."""


@contextlib.contextmanager
def exclusive_run(warehouse_url: str) -> Iterator[None]:
    """Hold the elt lock for the duration, or fail at once if another run holds it. The lock's
    connection is the run's first and is tried three times: the tasks retry a dropped
    connection, and a run must not fail before them on one (as the fault benchmark showed)."""
    with connect(warehouse_url, purpose="warehouse", attempts=3) as conn:
        acquired = conn.execute(
            "select pg_try_advisory_lock(hashtext(%s))", (LOCK_NAME,)
        ).fetchone()
        if not acquired or not acquired[0]:
            holder = conn.execute(
                "select a.pid, a.backend_start, a.application_name from pg_locks l"
                " join pg_stat_activity a on a.pid = l.pid"
                " where l.locktype = 'advisory' and l.objid = (hashtext(%s)::bigint & 4294967295)::oid"
                " and l.granted limit 1",
                (LOCK_NAME,),
            ).fetchone()
            since = f" since {holder[1]:%Y-%m-%d %H:%M:%S}" if holder else ""
            raise RunInProgress(
                f"Another elt run is in progress (it holds the warehouse lock{since}); "
                "this run did nothing, try again when it has finished."
            )
        try:
            yield
        finally:
            # a warehouse restart during the run closed this connection, and the lock with it
            with contextlib.suppress(psycopg.OperationalError):
                conn.execute("select pg_advisory_unlock(hashtext(%s))", (LOCK_NAME,))
