"""Accounts: registration, login sessions, and the account QR code.

Passwords are scrypt-hashed (`secrets_hash`).  Failed logins are limited per
account and per source address (`ratelimit`, counted in the store, so every
relay process shares them); a login for an unknown account still costs one
scrypt so its timing does not reveal which accounts exist.
Sessions are random bearer tokens; only their SHA-256 is stored, and each
expires after `session_ttl`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError

from nvrshare.protocol.errors import SignatureError
from nvrshare.relay.errors import (
    AccountExists,
    AccountNotFound,
    InvalidRequest,
    Unauthorized,
)
from nvrshare.relay.services import audit
from nvrshare.relay.services.context import ServiceContext, account_from_row, new_id
from nvrshare.relay.services.identifiers import (
    IdentifierKind,
    classify,
    normalize,
)
from nvrshare.relay.services.models import Account, Session
from nvrshare.relay.services.ratelimit import (
    LimitCheck,
    SharedLimiter,
    begin_attempt,
    forgive_attempt,
    purge_expired_failures,
)
from nvrshare.relay.services.secrets_hash import (
    MAX_SECRET_LENGTH,
    hash_secret,
    hash_secret_async,
    verify_secret_async,
)
from nvrshare.relay.store import schema

__all__ = ["QR_PREFIX", "AccountService"]

MIN_PASSWORD = 8
QR_PREFIX = "nvrshare:account:v1:"
CONTEXT_ACCOUNT_QR = b"nvrshare/account-qr/v1"
MAX_QR_PAYLOAD = 512


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_password(password: object) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_SECRET_LENGTH:
        raise InvalidRequest(f"password must be {MIN_PASSWORD}..{MAX_SECRET_LENGTH} characters")
    return password


class AccountService:
    """Who is who: accounts, sessions, and turning a name into an account."""

    def __init__(self, context: ServiceContext) -> None:
        self._ctx = context
        config = context.config
        # Stored keys: login:acct:<id>, login:login:<unknown name>, login:src:<address>.
        self._per_account = SharedLimiter(
            scope="login", limit=config.login_failures_per_account, window=config.login_window
        )
        self._per_source = SharedLimiter(
            scope="login", limit=config.login_failures_per_source, window=config.login_window
        )
        # A hash to verify against when the account does not exist (equal timing).
        self._decoy_hash = hash_secret(secrets.token_urlsafe(16), config.scrypt)

    async def register(
        self,
        *,
        password: str,
        email: str | None = None,
        phone: str | None = None,
        name: str | None = None,
        region: str | None = None,
    ) -> Account:
        """Create an account named by at least one of email, phone and name.

        Raises `InvalidRequest` (bad values), `AccountExists` (a name is taken).
        """
        ids = {
            "email": normalize(IdentifierKind.EMAIL, email) if email is not None else None,
            "phone": normalize(IdentifierKind.PHONE, phone) if phone is not None else None,
            "name": normalize(IdentifierKind.NAME, name) if name is not None else None,
        }
        if not any(ids.values()):
            raise InvalidRequest("an account needs an email, a phone number or an account name")
        config = self._ctx.config
        region = config.default_region if region is None else region
        if region not in config.regions:
            raise InvalidRequest(f"region must be one of {', '.join(config.regions)}")
        password_hash = await hash_secret_async(_check_password(password), config.scrypt)
        account = Account(id=new_id(), region=region, created_at=self._ctx.clock(), **ids)
        table = schema.accounts
        taken = [table.c[k] == v for k, v in ids.items() if v is not None]
        try:
            async with self._ctx.store.transaction() as conn:
                if (await conn.execute(select(table.c.id).where(or_(*taken)))).first():
                    raise AccountExists("an account with this email, phone or name exists")
                await conn.execute(
                    table.insert().values(
                        id=account.id,
                        password_hash=password_hash,
                        region=region,
                        created_at=account.created_at,
                        **ids,
                    )
                )
                await audit.record(
                    conn,
                    at=account.created_at,
                    actor_id=account.id,
                    action=audit.AuditAction.ACCOUNT_REGISTERED,
                    subject_id=account.id,
                )
        except IntegrityError:
            raise AccountExists("an account with this email, phone or name exists") from None
        return account

    async def login(self, *, login: str, password: str, source: str) -> Session:
        """A new session for valid credentials.

        Raises `Unauthorized` (wrong login or password, one message for both),
        `RateLimited` (too many failures for this account or source).
        """
        now = self._ctx.clock()
        source_key = f"src:{source[:64]}"
        if not isinstance(login, str) or not isinstance(password, str):
            raise InvalidRequest("login and password must be strings")
        try:
            kind = classify(login)
            value = normalize(kind, login)
        except InvalidRequest:
            kind, value = IdentifierKind.NAME, ""
        table = schema.accounts
        async with self._ctx.store.transaction() as conn:
            row = None
            if value:
                row = (await conn.execute(select(table).where(table.c[kind] == value))).first()
            account_key = f"acct:{row.id}" if row is not None else f"login:{value}"
            account_check = LimitCheck(
                limiter=self._per_account, key=account_key, what="logins for this account"
            )
            # Counted before the password is checked: racing guesses cannot pass together.
            attempt = await begin_attempt(
                conn,
                [
                    LimitCheck(limiter=self._per_source, key=source_key,
                               what="logins from this address"),
                    account_check,
                ],
                now=now,
            )  # fmt: skip
        stored = row.password_hash if row is not None else self._decoy_hash
        ok = await verify_secret_async(password[: MAX_SECRET_LENGTH + 1], stored)
        if row is None or not ok:
            raise Unauthorized("wrong account or password")  # the attempt stays counted
        token = secrets.token_urlsafe(32)
        expires_at = now + self._ctx.config.session_ttl
        async with self._ctx.store.transaction() as conn:
            # This source's attempt was no guess, and the account starts afresh.
            await forgive_attempt(conn, attempt, reset=[account_check])
            sessions = schema.sessions
            await conn.execute(delete(sessions).where(sessions.c.expires_at <= now))
            await conn.execute(
                sessions.insert().values(
                    token_hash=_token_hash(token),
                    account_id=row.id,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
        return Session(token=token, account=account_from_row(row), expires_at=expires_at)

    async def authenticate(self, token: str) -> Account:
        """The account a bearer token belongs to; `Unauthorized` if unknown or expired."""
        if not isinstance(token, str) or not 16 <= len(token) <= 128:
            raise Unauthorized("missing or malformed bearer token")
        sessions, accounts = schema.sessions, schema.accounts
        async with self._ctx.store.transaction(readonly=True) as conn:
            row = (
                await conn.execute(
                    select(accounts, sessions.c.expires_at)
                    .join(sessions, sessions.c.account_id == accounts.c.id)
                    .where(sessions.c.token_hash == _token_hash(token))
                )
            ).first()
        if row is None or row.expires_at <= self._ctx.clock():
            raise Unauthorized("session expired or unknown: log in again")
        return account_from_row(row)

    async def logout(self, token: str) -> None:
        sessions = schema.sessions
        async with self._ctx.store.transaction() as conn:
            await conn.execute(delete(sessions).where(sessions.c.token_hash == _token_hash(token)))

    async def purge_expired_sessions(self) -> int:
        """Delete sessions that have expired; returns how many."""
        sessions = schema.sessions
        async with self._ctx.store.transaction() as conn:
            result = await conn.execute(
                delete(sessions).where(sessions.c.expires_at <= self._ctx.clock())
            )
        return int(result.rowcount or 0)

    async def purge_expired_failures(self) -> int:
        """Delete expired failed-attempt records (logins and device binds); returns how many."""
        async with self._ctx.store.transaction() as conn:
            return await purge_expired_failures(conn, now=self._ctx.clock())

    async def get(self, account_id: str) -> Account:
        table = schema.accounts
        async with self._ctx.store.transaction(readonly=True) as conn:
            row = (await conn.execute(select(table).where(table.c.id == account_id))).first()
        if row is None:
            raise AccountNotFound
        return account_from_row(row)

    # --- account QR code -----------------------------------------------------

    def qr_payload(self, account: Account) -> tuple[str, int]:
        """A signed, expiring text naming `account`, for a QR code; (payload, expires_at)."""
        expires_at = int(self._ctx.clock()) + self._ctx.config.qr_ttl
        key = self._ctx.keys.signing_key
        claims = json.dumps(
            {"a": account.id, "exp": expires_at, "kid": key.key_id}, separators=(",", ":")
        ).encode()
        signature = key.sign(CONTEXT_ACCOUNT_QR, claims)
        return f"{QR_PREFIX}{_b64(claims)}.{_b64(signature)}", expires_at

    def account_id_from_qr(self, payload: str) -> str:
        """The account id a scanned QR payload names; `InvalidRequest` if it is not valid."""
        if not isinstance(payload, str) or len(payload) > MAX_QR_PAYLOAD:
            raise InvalidRequest("not an nvrshare account QR code")
        if not payload.startswith(QR_PREFIX) or payload.count(".") != 1:
            raise InvalidRequest("not an nvrshare account QR code")
        claims_text, signature_text = payload[len(QR_PREFIX) :].split(".")
        try:
            claims_raw, signature = _unb64(claims_text), _unb64(signature_text)
            claims = json.loads(claims_raw)
            key_id, account_id, expires_at = claims["kid"], claims["a"], claims["exp"]
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise InvalidRequest("not an nvrshare account QR code") from None
        if not isinstance(key_id, str) or not isinstance(account_id, str):
            raise InvalidRequest("not an nvrshare account QR code")
        try:
            self._ctx.keys.key_ring.verify(key_id, CONTEXT_ACCOUNT_QR, claims_raw, signature)
        except SignatureError:
            raise InvalidRequest("the QR code's signature does not verify") from None
        if type(expires_at) is not int or expires_at <= self._ctx.clock():
            raise InvalidRequest("the QR code has expired: ask for a fresh one")
        return account_id
