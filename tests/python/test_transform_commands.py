"""Pure pieces of the dbt runner: the command line, where dbt's artifacts are read and the HMAC
pads (no warehouse needed)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from haven.cli.ops import _status_sections
from haven.mcp_server import manifest
from haven.settings import PROJECT_DIR, Settings, get_settings
from haven.transform.dbt import PARTIAL_PARSE_FILE, dbt_args, node_name, run_dbt, saved_parse
from haven.warehouse.pii import hmac_pads


def test_dbt_args_builds_the_command_line() -> None:
    args = dbt_args(
        "build", select="fct_orders+", full_refresh=True, variables={"churn_window_days": 30}
    )
    assert args[:5] == [
        "build",
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(PROJECT_DIR),
    ]
    assert args[args.index("--select") + 1] == "fct_orders+"
    assert "--full-refresh" in args
    assert args[args.index("--vars") + 1] == "{churn_window_days: 30}"
    assert "--exclude" not in dbt_args("build")
    cautious = dbt_args("build", select="+resource_type:snapshot", indirect_selection="cautious")
    assert cautious[cautious.index("--indirect-selection") + 1] == "cautious"


def test_each_connection_and_vars_start_from_their_own_parse(tmp_path: Path) -> None:
    """The hourly vars, the nightly vars, then the hourly again: the third parse starts from the
    first one's, kept aside, so dbt does not parse the project again (it writes its partial-parse
    file only after parsing). Another database has a parse of its own."""
    environment = {
        "DBT_TARGET": "dev",
        "HAVEN_DBT_DATABASE": "parse_test",
        "DBT_TARGET_PATH": str(tmp_path / "target"),
        "DBT_LOG_PATH": str(tmp_path / "logs"),
    }
    written = tmp_path / "target" / PARTIAL_PARSE_FILE
    hourly = dbt_args("parse", variables={"test_changed_rows_only": True})
    nightly = dbt_args("parse")
    other_database = {**environment, "HAVEN_DBT_DATABASE": "parse_test_2"}
    assert saved_parse(hourly, environment) != saved_parse(nightly, environment)
    assert saved_parse(hourly, environment) != saved_parse(hourly, other_database)
    assert run_dbt(hourly, environment).success
    assert run_dbt(nightly, environment).success
    parsed = written.stat().st_mtime_ns
    kept = saved_parse(hourly, environment).stat().st_mtime_ns
    assert run_dbt(hourly, environment).success
    assert written.stat().st_mtime_ns == parsed, "the hourly vars were parsed again"
    assert saved_parse(hourly, environment).stat().st_mtime_ns == kept


def test_dbt_artifacts_are_read_where_dbt_target_path_puts_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """DBT_TARGET_PATH, as dbt reads it (relative to the project), is where haven reads the
    manifest and run results; unset, target/."""
    monkeypatch.delenv("DBT_TARGET_PATH", raising=False)
    assert Settings().dbt_target_dir == PROJECT_DIR / "target"
    monkeypatch.setenv("DBT_TARGET_PATH", "target/elsewhere")
    assert Settings().dbt_target_dir == PROJECT_DIR / "target" / "elsewhere"
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path))
    node = {"resource_type": "model", "name": "only_here"}
    document = {"nodes": {"model.clutter_haven.only_here": node}, "parent_map": {}}
    (tmp_path / "manifest.json").write_text(json.dumps(document))
    get_settings.cache_clear()
    try:
        assert manifest.load().find("only_here") == "model.clutter_haven.only_here"
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(
    "key", ["short", "k" * 64, "a much longer key than the sha-256 block size " * 3]
)
def test_hmac_pads_reproduce_pythons_hmac(key: str) -> None:
    """sha256(outer || sha256(inner || message)) is HMAC-SHA256, as the mask_pii macro computes it."""
    inner, outer = hmac_pads(key)
    message = b"ada.baker1@mail.com"
    by_pads = hashlib.sha256(
        bytes.fromhex(outer) + hashlib.sha256(bytes.fromhex(inner) + message).digest()
    )
    assert by_pads.hexdigest() == hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("unique_id", "name"),
    [
        (
            "test.clutter_haven.assert_raw_equals_staged_plus_quarantined",
            "assert_raw_equals_staged_plus_quarantined",
        ),
        (
            "test.clutter_haven.unique_stg_app__orders_order_id.4f1c2a9e0b",
            "unique_stg_app__orders_order_id",
        ),
        (
            "unit_test.clutter_haven.stg_app__customers.customers_are_masked",
            "customers_are_masked",
        ),
        ("model.clutter_haven.fct_orders", "fct_orders"),
    ],
)
def test_a_node_is_named_by_its_name_not_its_package(unique_id: str, name: str) -> None:
    """`haven status` named a failing singular test `clutter_haven` (its package)."""
    assert node_name(unique_id) == name
    sections = dict(
        (title, rows)
        for title, _, rows in _status_sections(
            {
                "runs": [],
                "freshness": [],
                "failing_tests": [{"unique_id": unique_id, "status": "fail", "message": "m"}],
                "quarantine": [],
                "reconciliation": [],
                "reconciliation_differences": [],
                "value_checks": [],
            }
        )
    )
    assert sections["failing tests (latest run)"] == [[name, "fail", "m"]]
