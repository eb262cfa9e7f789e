"""Pure pieces of the dbt runner: the command line and the HMAC pads (no warehouse needed)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from haven.settings import PROJECT_DIR
from haven.transform.dbt import dbt_args
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
