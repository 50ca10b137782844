"""Share tokens: short-lived, signed statements of what one account may do on one device.

A token carries exactly the caller's accepted permission matrix (the owner's
covers every channel and permission) and the device's current share epoch,
so an agent can refuse tokens minted before a revocation.  Signed by the
newest key of the relay's `KeyStore`; every live key verifies.
"""

from __future__ import annotations

from nvrshare.protocol.tokens import Audience, TokenIssuer, TokenVerifier, token_to_text
from nvrshare.protocol.validation import is_valid_serial
from nvrshare.relay.errors import DeviceNotFound
from nvrshare.relay.services.context import ServiceContext
from nvrshare.relay.services.models import Account, DataEndpoint, IssuedToken
from nvrshare.relay.services.shares import ShareService
from nvrshare.relay.services.sites_access import check_service_enabled, installer_token_scope

__all__ = ["TokenService"]


class TokenService:
    """Issues share tokens; `verifier()` checks them as the relay's data plane will."""

    def __init__(self, context: ServiceContext, shares: ShareService) -> None:
        self._ctx = context
        self._shares = shares
        # Set by whatever runs the data port next to this control plane, once its
        # port is known (it may be picked at start); tokens then say where to use them.
        self.data_endpoint: DataEndpoint | None = None

    async def issue(self, account: Account, serial: str) -> IssuedToken:
        """A token for `account` on `serial`, valid for the configured `token_ttl`.

        Raises `DeviceNotFound` (no relation), `Forbidden` (share not accepted),
        `Conflict` (owner of a device with no channels yet), `StoreUnavailable`.
        """
        if not is_valid_serial(serial):
            raise DeviceNotFound("no such device")
        now = self._ctx.clock()
        try:
            device, matrix = await self._shares.accepted_matrix(account, serial)
            valid_until = None
        except DeviceNotFound:
            scope = await installer_token_scope(self._ctx, account.id, serial, now)
            if scope is None:
                raise
            device, matrix, valid_until = scope
        await check_service_enabled(self._ctx, serial)
        not_before = int(now)
        expires_at = not_before + self._ctx.config.token_ttl
        if valid_until is not None:  # an installer grant's validity ends: so does the token
            expires_at = min(expires_at, valid_until)
        issuer = TokenIssuer(self._ctx.keys.signing_key, self._ctx.config.issuer)
        token = issuer.issue(
            account_id=account.id,
            device_serial=serial,
            channels=matrix,
            not_before=not_before,
            expires_at=expires_at,
            share_epoch=device.share_epoch,
        )
        return IssuedToken(
            token=token_to_text(token),
            device_serial=serial,
            expires_at=expires_at,
            share_epoch=device.share_epoch,
            permissions=matrix,
            data_endpoint=self.data_endpoint,
        )

    def verifier(self, audience: Audience = Audience.RELAY) -> TokenVerifier:
        """A verifier over the current key ring (build a new one after a rotation)."""
        return TokenVerifier(self._ctx.keys.key_ring, audience)
