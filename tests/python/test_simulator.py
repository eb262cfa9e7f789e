"""The simulated source: deterministic for a seed, linear in scale, advancing in time, damaged at a
known rate with every damaged row recorded."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from haven.errors import HavenError
from haven.settings import Settings
from haven.source import simulator
from haven.warehouse.endpoints import Endpoints, up
from haven.warehouse.fingerprint import table_fingerprint
from ingestion.app.helpers import source_columns
from tests.python.conftest import settings_for

SCALE = 0.01


def fingerprints(endpoints: Endpoints) -> dict[str, object]:
    with psycopg.connect(endpoints.source_admin_url) as conn:
        return {
            table: table_fingerprint(
                conn, "public", table, list(source_columns(conn, "public", table))
            )
            for table in simulator.APP_TABLES
        }


@pytest.fixture(scope="module")
def twins(haven_home: Path) -> tuple[Endpoints, Endpoints, Endpoints]:
    """Two sources with the same seed and one with another seed."""
    pairs = []
    for name, seed in (("twin_a", 7), ("twin_b", 7), ("other", 8)):
        endpoints = up(settings_for(haven_home, name))
        simulator.init(endpoints, scale=SCALE, seed=seed, defect_rate=0.02, replace=True)
        pairs.append(endpoints)
    return pairs[0], pairs[1], pairs[2]


def test_same_seed_same_data(twins) -> None:
    first, second, other = twins
    assert fingerprints(first) == fingerprints(second)
    assert fingerprints(first) != fingerprints(other)


def test_ticks_are_deterministic_too(twins) -> None:
    first, second, _ = twins
    simulator.tick(first, days=2)
    simulator.tick(second, days=2)
    assert fingerprints(first) == fingerprints(second)


def test_every_table_has_rows_and_the_marketplace_shape(twins) -> None:
    state = simulator.source_state(twins[0])
    assert all(rows > 0 for rows in state.rows.values()), state.rows
    with psycopg.connect(twins[0].source_admin_url) as conn:
        statuses = {row[0] for row in conn.execute("select distinct status from orders")}
        assert {"delivered", "picked_up", "refunded", "cancelled"} <= statuses
        orphans = conn.execute(
            "select count(*) from order_items i left join listings l on l.id = i.listing_id"
            " where l.id is null and not exists (select from sim.defects d where d.table_name = 'order_items' and d.row_id = i.id)"
        ).fetchone()
        assert orphans == (0,), "only injected defects leave orphan listing ids"


def test_scale_is_linear(haven_home: Path) -> None:
    endpoints = up(settings_for(haven_home, "scaled"))
    small, _ = simulator.init(endpoints, scale=0.01, seed=3, replace=True)
    large, _ = simulator.init(endpoints, scale=0.04, seed=3, replace=True)
    ratio = sum(large.rows.values()) / sum(small.rows.values())
    assert 3.5 < ratio < 4.5, ratio


def test_init_again_is_a_no_op_and_a_different_scale_needs_replace(haven_home: Path) -> None:
    endpoints = up(settings_for(haven_home, "again"))
    simulator.init(endpoints, scale=SCALE, seed=5, replace=True)
    _, created = simulator.init(endpoints, scale=SCALE, seed=5)
    assert created is False
    with pytest.raises(HavenError, match="--replace"):
        simulator.init(endpoints, scale=0.02, seed=5)


def _id_gaps(conn: psycopg.Connection, table: str) -> int:
    """Ids below the maximum that no row holds: ids are handed out densely, so a gap is a row that
    was hard-deleted."""
    return conn.execute(
        f"select max(id) - count(*) from {table}"  # noqa: S608 (a fixed table name)
    ).fetchone()[0]


def test_tick_advances_time_with_deletes_and_late_commits(haven_home: Path) -> None:
    endpoints = up(settings_for(haven_home, "ticking"))
    before, _ = simulator.init(endpoints, scale=0.05, seed=11, replace=True)
    deletable = ("categories", "customers", "listings")
    with psycopg.connect(endpoints.source_admin_url) as conn:
        gaps_before = {table: _id_gaps(conn, table) for table in deletable}
        max_updated = {
            table: conn.execute(f"select max(updated_at) from {table}").fetchone()[0]
            for table in ("shipments", "customers")
        }
    _, after = simulator.tick(endpoints, days=3)
    assert after.ticked_days == 3
    assert (after.clock - before.clock).days == 3
    assert after.rows["orders"] > before.rows["orders"]
    assert after.rows["customers"] > before.rows["customers"]
    with psycopg.connect(endpoints.source_admin_url) as conn:
        for table in deletable:
            assert _id_gaps(conn, table) > gaps_before[table], f"some {table} were hard-deleted"
        late = conn.execute(
            "select count(*) from shipments where tracking_number like '%%C' and updated_at < %s",
            (after.clock - __import__("datetime").timedelta(days=1),),
        ).fetchone()[0]
        assert late > 0, "late commits carry an updated_at earlier than the day they were committed"
        moved = conn.execute(
            "select count(*) from orders where updated_at > %s", (before.clock,)
        ).fetchone()[0]
        assert moved > 0, "orders changed status"
        price_changes = conn.execute(
            "select count(*) from listings where status = 'active' and updated_at > %s and updated_at > listed_at",
            (before.clock,),
        ).fetchone()[0]
        assert price_changes > 0
    assert all(value is not None for value in max_updated.values())


def _changed_since(conn: psycopg.Connection, moment: object) -> int:
    """Rows of the growing and changing tables written with an updated_at after ``moment``."""
    return sum(
        conn.execute(
            f"select count(*) from {table} where updated_at > %s",  # noqa: S608 (fixed names)
            (moment,),
        ).fetchone()[0]
        for table in ("customers", "listings", "orders", "payments", "shipments")
    )


def test_an_hourly_tick_is_an_hour_of_a_days_changes(haven_home: Path) -> None:
    endpoints = up(settings_for(haven_home, "hourly"))
    before, _ = simulator.init(endpoints, scale=0.05, seed=17, replace=True)
    with pytest.raises(HavenError, match="--days or by --hours, not both"):
        simulator.tick(endpoints, days=1, hours=1)
    _, first = simulator.tick(endpoints, hours=1)
    assert (first.ticked_days, first.ticked_hours) == (0, 1)
    assert first.clock - before.clock == __import__("datetime").timedelta(hours=1)
    assert first.rows["orders"] > before.rows["orders"]
    with psycopg.connect(endpoints.source_admin_url) as conn:
        hour = _changed_since(conn, before.clock)
        seeded = conn.execute(
            "select count(*) from payments where created_at > %s"
            " and provider_reference = 'pay_' || md5('17:' || order_id)",
            (before.clock,),
        )
        assert seeded.fetchone()[0] > 0, "a tick's payment references carry the source's seed"
        seasonal = conn.execute("select count(*) from categories where slug like 'seasonal-%%'")
        assert seasonal.fetchone()[0] == 1, "the first hour of a day opens the seasonal category"
    _, second = simulator.tick(endpoints, hours=2)
    assert second.ticked_hours == 3
    with psycopg.connect(endpoints.source_admin_url) as conn:
        seasonal = conn.execute("select count(*) from categories where slug like 'seasonal-%%'")
        assert seasonal.fetchone()[0] == 1, "later hours of the day open none"
    _, third = simulator.tick(endpoints, days=1)
    assert (third.ticked_days, third.ticked_hours) == (1, 3)
    assert third.clock - second.clock == __import__("datetime").timedelta(days=1)
    with psycopg.connect(endpoints.source_admin_url) as conn:
        day = _changed_since(conn, second.clock)
    assert 0 < hour * 6 < day, f"an hour changed {hour} rows, the next day {day}"
    _, fourth = simulator.tick(endpoints, hours=1)
    assert fourth.ticked_hours == 4


EXPECTED_DAMAGE = {
    "malformed_email": "select count(*) from customers c join sim.defects d on d.row_id = c.id and d.table_name = 'customers' where d.defect = 'malformed_email' and c.email not like '%%@%%'",
    "null_required": "select count(*) from sim.defects d left join customers c on d.table_name = 'customers' and c.id = d.row_id left join listings l on d.table_name = 'listings' and l.id = d.row_id where d.defect = 'null_required' and (c.email is null and c.id is not null or l.title is null and l.id is not null)",
    "future_date": "select count(*) from orders o join sim.defects d on d.row_id = o.id and d.table_name = 'orders' where d.defect = 'future_date' and o.placed_at > now() + interval '1 year'",
    "unknown_currency": "select count(*) from orders o join sim.defects d on d.row_id = o.id and d.table_name = 'orders' where d.defect = 'unknown_currency' and o.currency = 'ZZZ'",
    "orphan_foreign_key": "select count(*) from order_items i join sim.defects d on d.row_id = i.id and d.table_name = 'order_items' where d.defect = 'orphan_foreign_key' and not exists (select from listings l where l.id = i.listing_id)",
    "negative_amount": "select count(*) from sim.defects d left join order_items i on d.table_name = 'order_items' and i.id = d.row_id left join payments p on d.table_name = 'payments' and p.id = d.row_id where d.defect = 'negative_amount' and (i.unit_price_cents < 0 or p.amount_cents < 0)",
    "duplicate": "select count(*) from payments p join sim.defects d on d.row_id = p.id and d.table_name = 'payments' where d.defect = 'duplicate' and exists (select from payments o where o.provider_reference = p.provider_reference and o.id < p.id)",
}


def test_defects_are_injected_at_the_rate_and_recorded(haven_home: Path) -> None:
    endpoints = up(settings_for(haven_home, "damaged"))
    rate = 0.02
    simulator.init(endpoints, scale=0.05, seed=13, defect_rate=rate, replace=True)
    simulator.tick(endpoints, days=2)
    with psycopg.connect(endpoints.source_admin_url) as conn:
        recorded = dict(
            conn.execute("select defect, count(*) from sim.defects group by 1").fetchall()
        )
        assert set(recorded) == set(EXPECTED_DAMAGE)
        for kind, check in EXPECTED_DAMAGE.items():
            damaged = conn.execute(check).fetchone()[0]
            assert damaged == recorded[kind], (
                f"{kind}: {damaged} rows show it, {recorded[kind]} recorded"
            )
        for defect in simulator.DEFECTS:
            if defect.kind == "duplicate":
                continue
            table_rows = conn.execute(f"select count(*) from {defect.table}").fetchone()[0]
            hits = conn.execute(
                "select count(*) from sim.defects where table_name = %s and defect = %s",
                (defect.table, defect.kind),
            ).fetchone()[0]
            assert 0.5 * rate < hits / table_rows < 1.6 * rate, (defect, hits, table_rows)
        assert (
            conn.execute(
                "select count(*) from sim.defects where injected_at > %s",
                (simulator.DEFAULT_ANCHOR,),
            ).fetchone()[0]
            > 0
        ), "ticks damage new rows too"


def test_pipeline_role_reads_the_app_tables_but_not_the_simulator(twins) -> None:
    with psycopg.connect(twins[0].source_url, autocommit=True) as conn:
        assert conn.execute("select count(*) from orders").fetchone()[0] > 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from sim.defects")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("delete from orders")


def test_bad_arguments_are_one_sentence(haven, haven_home: Path) -> None:
    result = haven("source", "init", "--scale", "-1", home=haven_home)
    assert result.returncode == 1
    assert "--scale must be between" in result.stderr and "Traceback" not in result.stderr
    result = haven("source", "tick", "--days", "0", home=haven_home)
    assert result.returncode == 1
    assert "--days must be at least 1" in result.stderr


def test_settings_reject_nothing_silently() -> None:
    assert Settings(home=Path("/tmp/x")).embedded_dir == Path("/tmp/x/pg")
