"""The key that masks emails: where it comes from, and the one place it is handed to the
warehouse. The transformer reads its HMAC pads from ``haven_private.pii_key`` (a schema no other
role can use), so compiled SQL, ``haven env``, logs and the server's statement statistics never
hold key material: the pads travel as bind parameters only."""

from __future__ import annotations

import hashlib
import secrets

from haven.errors import HavenError
from haven.settings import Settings
from haven.warehouse.connection import connect
from haven.warehouse.endpoints import Endpoints

MISSING_KEY = (
    "HAVEN_PII_HASH_KEY is not set; a configured warehouse needs a secret key to mask emails"
    " (for example: export HAVEN_PII_HASH_KEY=$(python -c 'import secrets;"
    " print(secrets.token_hex(32))'))."
)
"""Said by ``haven up`` (before a run) and by the run itself when the key is missing."""


def pii_hash_key(settings: Settings, endpoints: Endpoints) -> str:
    """The HMAC key for emails: from the environment, or for the embedded warehouse a random key
    made once and kept (git-ignored) under ``.haven/``."""
    if settings.pii_hash_key is not None:
        return settings.pii_hash_key.get_secret_value()
    if not endpoints.embedded:
        raise HavenError(MISSING_KEY)
    path = settings.home / "pii_hash_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def hmac_pads(key: str) -> tuple[str, str]:
    """HMAC-SHA256's inner and outer padded keys, hex: with them SQL computes a real HMAC from
    the built-in ``sha256()`` (the embedded server has no pgcrypto)."""
    raw = key.encode()
    if len(raw) > 64:
        raw = hashlib.sha256(raw).digest()
    raw = raw.ljust(64, b"\0")
    inner = bytes(byte ^ 0x36 for byte in raw)
    outer = bytes(byte ^ 0x5C for byte in raw)
    return inner.hex(), outer.hex()


def store_pii_key(settings: Settings, endpoints: Endpoints) -> None:
    """Put the current key's pads in ``haven_private.pii_key`` (one row), as the warehouse's
    administrator; a changed key replaces the row."""
    inner_pad, outer_pad = hmac_pads(pii_hash_key(settings, endpoints))
    with connect(endpoints.warehouse_url, purpose="warehouse") as conn, conn.transaction():
        stored = conn.execute("select inner_pad, outer_pad from haven_private.pii_key").fetchall()
        if stored != [(inner_pad, outer_pad)]:
            conn.execute("delete from haven_private.pii_key")
            conn.execute(
                "insert into haven_private.pii_key (inner_pad, outer_pad) values (%s, %s)",
                (inner_pad, outer_pad),
            )
