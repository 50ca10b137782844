"""A small versioned migration scheme, run at start-up.

`schema_version` holds one row: the number of steps applied.  `MIGRATIONS` is
the ordered list of steps; start-up applies the missing ones in one
transaction, so a failed step leaves the database as it was.  On PostgreSQL an
advisory lock serialises relays starting together; on SQLite the store's
`BEGIN IMMEDIATE` does the same.  Steps are append-only: never edit a shipped
step, add a new one (an `ALTER TABLE`, a new table) instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Connection, inspect, select, text

from nvrshare.relay.errors import RelayError
from nvrshare.relay.store import schema, schema_sites

__all__ = ["MIGRATIONS", "SchemaTooNew", "apply_migrations", "current_version"]

Step = Callable[[Connection], None]

# An arbitrary constant naming "nvrshare relay migrations" for pg_advisory_xact_lock.
_ADVISORY_LOCK_ID = 0x6E7672_0001


class SchemaTooNew(RelayError):
    """The database was migrated by a newer relay than this one."""

    code = "schema_too_new"


def _v1_initial(conn: Connection) -> None:
    schema.metadata.create_all(
        conn,
        tables=[
            schema.accounts,
            schema.sessions,
            schema.devices,
            schema.channels,
            schema.shares,
            schema.share_history,
            schema.revocations,
            schema.audit_log,
        ],
    )


def _v2_installer_sites(conn: Connection) -> None:
    schema.metadata.create_all(conn, tables=list(schema_sites.SITE_TABLES))


def _v3_shared_rate_limits(conn: Connection) -> None:
    # Failed-attempt counters move from each process's memory into the store.
    schema.failed_attempts.create(conn)


MIGRATIONS: Sequence[Step] = (_v1_initial, _v2_installer_sites, _v3_shared_rate_limits)


def current_version(conn: Connection) -> int:
    """The number of migration steps applied (0 for an empty database)."""
    if not inspect(conn).has_table("schema_version"):
        return 0
    row = conn.execute(select(schema.schema_version.c.version)).first()
    return 0 if row is None else int(row[0])


def apply_migrations(conn: Connection, steps: Sequence[Step] = MIGRATIONS) -> tuple[int, int]:
    """Apply the missing steps inside the caller's transaction; return (before, after).

    Raises `SchemaTooNew` if the database is ahead of this code.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
    schema.schema_version.create(conn, checkfirst=True)
    before = current_version(conn)
    if before > len(steps):
        raise SchemaTooNew(
            f"database schema is version {before}, this relay knows {len(steps)}: upgrade it"
        )
    for step in steps[before:]:
        step(conn)
    if before != len(steps):
        conn.execute(schema.schema_version.delete())
        conn.execute(schema.schema_version.insert().values(version=len(steps)))
    return before, len(steps)
