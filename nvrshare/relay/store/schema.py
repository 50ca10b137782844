"""The relay's tables (SQLAlchemy Core), as of the newest migration.

Times are Unix seconds (float).  Ids exposed over the API are random opaque
strings; the only integer key (`audit_log.id`) never leaves the relay.
Permission matrices are stored as JSON text `{"<channel>": <flag bits>}` so
the same column works on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "FAILED_ATTEMPT_KEY",
    "accounts",
    "audit_log",
    "channels",
    "devices",
    "failed_attempts",
    "metadata",
    "revocations",
    "schema_version",
    "sessions",
    "share_history",
    "shares",
]

metadata = MetaData()

ID = 32  # secrets.token_urlsafe(16) is 22 characters; leave head-room

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("email", String(254), unique=True),
    Column("phone", String(20), unique=True),
    Column("name", String(32), unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("region", String(8), nullable=False),
    Column("created_at", Float, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    # SHA-256 of the bearer token: a leaked table does not leak live sessions.
    Column("token_hash", String(64), primary_key=True),
    Column(
        "account_id",
        String(ID),
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

devices = Table(
    "devices",
    metadata,
    Column("serial", String(64), primary_key=True),
    Column("domain", String(63), unique=True),
    Column("model", String(64), nullable=False, default=""),
    Column("firmware_version", String(64), nullable=False, default=""),
    Column("ip", String(45), nullable=False, default=""),
    Column("port", Integer, nullable=False, default=0),
    Column("public_key", LargeBinary(32)),
    Column("verification_code_hash", String(200)),
    Column("online", Boolean, nullable=False, default=False),
    Column("last_seen", Float),
    Column("registered_at", Float, nullable=False),
    Column("owner_id", String(ID), ForeignKey("accounts.id", ondelete="SET NULL"), index=True),
    Column("alias", String(64)),
    Column("bound_at", Float),
    Column("share_epoch", BigInteger, nullable=False, default=0),
    Column("grant_version", BigInteger, nullable=False, default=0),
)

channels = Table(
    "channels",
    metadata,
    Column(
        "device_serial",
        String(64),
        ForeignKey("devices.serial", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("number", Integer, primary_key=True),
    Column("name", String(64), nullable=False),
)

shares = Table(
    "shares",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column(
        "device_serial",
        String(64),
        ForeignKey("devices.serial", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("owner_id", String(ID), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column(
        "recipient_id", String(ID), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    ),
    Column("state", String(10), nullable=False),
    Column("permissions", Text, nullable=False),
    Column("remark", String(64)),
    Column("recipient_alias", String(64)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("device_serial", "recipient_id", name="uq_shares_device_recipient"),
    Index("ix_shares_recipient", "recipient_id", "state"),
    Index("ix_shares_owner", "owner_id"),
)

share_history = Table(
    "share_history",
    metadata,
    Column(
        "owner_id",
        String(ID),
        ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "recipient_id",
        String(ID),
        ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("last_shared_at", Float, nullable=False),
)

# Accounts that lost access to a device: grant sets carry them so an agent can
# refuse tokens issued before the revocation.  No foreign key on the account:
# a deleted account's revocation still matters.
revocations = Table(
    "revocations",
    metadata,
    Column(
        "device_serial",
        String(64),
        ForeignKey("devices.serial", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("account_id", String(ID), primary_key=True),
    Column("revoked_at", Float, nullable=False),
    Column("share_epoch", BigInteger, nullable=False),
)

# Append-only; no foreign keys so the trail outlives what it talks about.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor_id", String(ID)),
    Column("action", String(40), nullable=False),
    Column("device_serial", String(64)),
    Column("subject_id", String(ID)),
    Column("detail", Text, nullable=False, default="{}"),
    Index("ix_audit_device", "device_serial", "id"),
)

# Failed logins and device binds, one row per failure (services.ratelimit):
# shared by every relay process on this database.  Rows are kept only until
# `expires_at` (the failure time plus the limiter's window).
FAILED_ATTEMPT_KEY = 200

failed_attempts = Table(
    "failed_attempts",
    metadata,
    Column(
        "id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("key", String(FAILED_ATTEMPT_KEY), nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_failed_attempts_key", "key", "expires_at"),
    Index("ix_failed_attempts_expires_at", "expires_at"),
)
