"""Connecting to PostgreSQL with errors a user can act on, and URL helpers shared by every layer."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from haven.errors import HavenError


def connect(
    url: str, *, purpose: str, autocommit: bool = True, attempts: int = 1
) -> psycopg.Connection:
    """Open a connection, turning every way it can fail into one sentence naming ``purpose``.
    With ``attempts`` above 1, a connection the server or the network drops is tried again
    (after 0.5 s, 1 s, 2 s, ...); a URL that is not valid is not.

    The password never appears in the message.
    """
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.5, max=4),
        retry=retry_if_exception_type(psycopg.OperationalError),
        reraise=True,
    )
    try:
        return retrying(psycopg.connect, url, autocommit=autocommit, connect_timeout=10)
    except psycopg.ProgrammingError as error:
        raise HavenError(
            f"The {purpose} URL {redact(url)} is not a valid PostgreSQL URL: {_first_line(error)}."
        ) from None
    except psycopg.OperationalError as error:
        raise HavenError(
            f"Cannot connect to the {purpose} at {redact(url)} ({_first_line(error)}); "
            "check the URL and that the server is running."
        ) from None


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def with_user(url: str, user: str, password: str | None) -> str:
    """The same server and database as ``url``, logged in as another role."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    credentials = f"{user}:{password}" if password else user
    return urlunsplit(parts._replace(netloc=f"{credentials}@{host}{port}"))


def with_database(url: str, database: str) -> str:
    """The same server and role as ``url``, another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def copy_database(url: str, copy: str) -> None:
    """Replace the database ``copy`` with a copy of the one at ``url`` (PostgreSQL copies its
    files: ``CREATE DATABASE ... TEMPLATE``), on the same server. Nobody may be connected to a
    database while it is copied: sessions still open on it (a pool's) are ended first."""
    original = str(conninfo_to_dict(url)["dbname"])
    with psycopg.connect(url, dbname="postgres", autocommit=True) as conn:
        conn.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity"
            " where datname = %s and pid <> pg_backend_pid()",
            (original,),
        )
        conn.execute(sql.SQL("drop database if exists {}").format(sql.Identifier(copy)))
        conn.execute(
            sql.SQL("create database {} template {}").format(
                sql.Identifier(copy), sql.Identifier(original)
            )
        )


def validate_url(url: str, *, setting: str) -> None:
    """Reject what is obviously not a PostgreSQL URL before anything tries to connect."""
    scheme = urlsplit(url).scheme
    if scheme not in {"postgresql", "postgres"}:
        raise HavenError(
            f"{setting} must be a postgresql:// URL, got {redact(url)!r}; "
            "for example postgresql://user:password@host:5432/database."
        )
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as error:
        raise HavenError(
            f"{setting} is not a valid PostgreSQL URL: {_first_line(error)}."
        ) from None
    if not urlsplit(url).path.strip("/"):
        raise HavenError(
            f"{setting} must name a database, for example postgresql://host:5432/warehouse."
        )


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0].rstrip(".") if text else type(error).__name__
