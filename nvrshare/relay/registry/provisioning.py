"""Bootstrap provisioning: a verified claim in, a per-device broker credential out.

`ProvisioningService.claim(body, source, now)` checks, in order: rate limits
(per serial and per source; only failures count), the claim's shape and
freshness, the device-key signature (possession of the key to pin), then
the manufacturing manifest when one is loaded (the MAC must verify with the
manifest's code key, or the claim's key must be the manifest's key), or,
without a manifest, the MAC under the code the device sent when
`trust_first_claim` is on (else: refused).  A serial already pinned (looked
up through `pinned_key`) must come with that key, else it is refused and
logged as an ALERT, and its record is left untouched; a new serial is pinned
through `DeviceService.apply_registration`.  Then it provisions the broker account
(username = client id = serial, a fresh random password, an ACL on exactly
that device's topics).  The relay's own broker names all contain ':', which
no serial can; the broker layer also refuses any serial that is a reserved
name or an existing non-device account (`ProvisioningRefused`, 409 here).

`provisioning_routes(service)` adds `POST /api/v1/provision` to an aiohttp
app: thin, bounded (8 KiB body), JSON errors, 429 with Retry-After.
"""

from __future__ import annotations

import hmac
import inspect
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from nvrshare.protocol.topics import DEFAULT_ROOT, device_topic_patterns
from nvrshare.relay.broker import (
    BrokerCredential,
    BrokerError,
    BrokerProvisioner,
    ProvisioningRefused,
    TopicAcl,
    generate_password,
)
from nvrshare.relay.registry.claims import Claim, ClaimInvalid, Manifest, code_key, parse_claim
from nvrshare.relay.registry.interfaces import DeviceDirectory

__all__ = [
    "ClaimRefused",
    "ProvisioningConfig",
    "ProvisioningService",
    "provisioning_routes",
]

MAX_BODY = 8 * 1024
PROVISION_PATH = "/api/v1/provision"


class ClaimRefused(Exception):
    """The claim was refused; `status` is the HTTP status, `retry_after` for 429."""

    def __init__(self, message: str, *, status: int = 403, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True, kw_only=True, slots=True)
class ProvisioningConfig:
    """trust_first_claim: without a manifest entry, accept the first valid claim for a serial.

    failures_per_serial / failures_per_source within `window` seconds before 429;
    claims_per_source counts every claim, accepted ones too, so trust on first
    claim cannot be used to mint accounts for made-up serials in bulk.
    (Per process, in memory; behind a reverse proxy the source is the proxy's
    address unless the proxy limits too.)
    """

    trust_first_claim: bool = False
    max_skew: int = 300
    failures_per_serial: int = 5
    failures_per_source: int = 20
    claims_per_source: int = 60
    window: float = 600.0
    topic_root: str = DEFAULT_ROOT


class _Limiter:
    """Sliding-window failure counter; bounded key count (oldest keys forgotten)."""

    def __init__(self, limit: int, window: float, max_keys: int = 100_000) -> None:
        self._limit, self._window, self._max_keys = limit, window, max_keys
        self._hits: dict[str, deque[float]] = {}

    def retry_after(self, key: str, now: float) -> int:
        hits = self._hits.get(key)
        while hits and hits[0] <= now - self._window:
            hits.popleft()
        if hits is None or len(hits) < self._limit:
            return 0
        return max(1, int(hits[0] + self._window - now) + 1)

    def record(self, key: str, now: float) -> None:
        if key not in self._hits and len(self._hits) >= self._max_keys:
            self._hits.pop(next(iter(self._hits)))
        self._hits.setdefault(key, deque(maxlen=self._limit)).append(now)


class ProvisioningService:
    """See the module docstring.  `hash_code` turns a code into what bind() checks."""

    def __init__(
        self,
        config: ProvisioningConfig,
        *,
        directory: DeviceDirectory,
        broker: BrokerProvisioner | None,
        hash_code: Callable[[str], object],
        manifest: Manifest | None = None,
        pinned_key: Callable[[str], Awaitable[bytes | None]] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._config = config
        self._directory = directory
        self._pinned_key = pinned_key
        self._broker = broker
        self._hash_code = hash_code
        self.manifest = manifest or Manifest()
        self._log = logger or logging.getLogger("nvrshare.relay.provisioning")
        self._per_serial = _Limiter(config.failures_per_serial, config.window)
        self._per_source = _Limiter(config.failures_per_source, config.window)
        self._all_per_source = _Limiter(config.claims_per_source, config.window)

    async def claim(self, body: object, *, source: str, now: float) -> BrokerCredential:
        """Verify `body` and return the device's new broker credential; `ClaimRefused` if not."""
        wait = max(
            self._per_source.retry_after(source, now),
            self._all_per_source.retry_after(source, now),
        )
        serial = body.get("serial") if isinstance(body, dict) else None
        if isinstance(serial, str) and len(serial) <= 64:
            wait = max(wait, self._per_serial.retry_after(serial, now))
        if wait:
            raise ClaimRefused("too many claims; try later", status=429, retry_after=wait)
        self._all_per_source.record(source, now)
        try:
            claim = parse_claim(body)
            self._verify(claim, now)
        except (ClaimInvalid, ClaimRefused) as exc:
            self._per_source.record(source, now)
            if isinstance(serial, str) and len(serial) <= 64:
                self._per_serial.record(serial, now)
            self._log.warning("provisioning claim from %s refused: %s", source, exc)
            if isinstance(exc, ClaimRefused):
                raise
            raise ClaimRefused(str(exc), status=400) from None
        return await self._grant(claim, source, now)

    def _verify(self, claim: Claim, now: float) -> None:
        if abs(now - claim.timestamp) > self._config.max_skew:
            raise ClaimRefused("claim timestamp too far from the relay's clock")
        if not claim.signature_valid():
            raise ClaimRefused("claim not signed by the key it carries")
        entry = self.manifest.get(claim.serial)
        if entry is not None and entry.public_key is not None:
            if not hmac.compare_digest(entry.public_key, claim.public_key):
                raise ClaimRefused("the key is not the manufacturer's key for this serial")
            if claim.verification_code and not claim.mac_matches(
                code_key(claim.serial, claim.verification_code)
            ):
                raise ClaimRefused("claim MAC does not verify")
            return
        if entry is not None and entry.code_key is not None:
            if not claim.mac_matches(entry.code_key):
                raise ClaimRefused("claim MAC does not verify")
            if claim.verification_code and not hmac.compare_digest(
                code_key(claim.serial, claim.verification_code), entry.code_key
            ):
                raise ClaimRefused("verification code does not match the manifest")
            return
        if not self._config.trust_first_claim:
            raise ClaimRefused("unknown device (not in the manufacturing manifest)")
        if not claim.verification_code or not claim.mac_matches(
            code_key(claim.serial, claim.verification_code)
        ):
            raise ClaimRefused("claim MAC does not verify")

    async def _grant(self, claim: Claim, source: str, now: float) -> BrokerCredential:
        if self._broker is None:
            raise ClaimRefused("this relay does not provision broker accounts", status=503)
        pinned = await self._pinned_key(claim.serial) if self._pinned_key is not None else None
        if pinned is not None:
            # A device we know: only its own key may have a new credential, and
            # its record is left alone (its next registration refreshes it).
            if not hmac.compare_digest(pinned, claim.public_key):
                self._alert(claim.serial, source, now)
            return await self._provision(claim, source, now)
        code_hash: object = None
        if claim.verification_code:
            code_hash = self._hash_code(claim.verification_code)
            if inspect.isawaitable(code_hash):
                code_hash = await code_hash
        # Pin the key (first claim) or check it (later ones) in the device record.
        outcome = await self._directory.apply_registration(
            serial=claim.serial,
            domain=None,
            model="unknown",
            firmware_version="unknown",
            channels=[],
            ip="",
            port=0,
            public_key=claim.public_key,
            verification_code_hash=code_hash if isinstance(code_hash, str) else None,
            now=now,
        )
        if not outcome.accepted:
            reason = getattr(outcome.reason, "value", str(outcome.reason))
            if reason == "key_mismatch":
                self._alert(claim.serial, source, now)
            raise ClaimRefused(outcome.message or "claim refused", status=409)
        return await self._provision(claim, source, now)

    def _alert(self, serial: str, source: str, now: float) -> None:
        self._log.error(
            "ALERT: provisioning claim for %s from %s with another key: refused", serial, source
        )
        self._per_serial.record(serial, now)
        self._per_source.record(source, now)
        raise ClaimRefused(
            "the device key does not match the key pinned for this serial", status=409
        )

    async def _provision(self, claim: Claim, source: str, now: float) -> BrokerCredential:
        assert self._broker is not None
        credential = BrokerCredential(
            username=claim.serial, password=generate_password(), client_id=claim.serial
        )
        patterns = device_topic_patterns(claim.serial, root=self._config.topic_root)
        try:
            await self._broker.provision_device(
                credential, TopicAcl(publish=patterns.publish, subscribe=patterns.subscribe)
            )
        except ProvisioningRefused as exc:
            # The serial names an account that is not a device's (the relay's
            # own, say): never replaced, and counted as a failed claim.
            self._log.error(
                "ALERT: claim for %s from %s refused by the broker: %s", claim.serial, source, exc
            )
            self._per_serial.record(claim.serial, now)
            self._per_source.record(source, now)
            raise ClaimRefused("this serial cannot be provisioned", status=409) from None
        except BrokerError as exc:
            self._log.error("broker provisioning for %s failed: %s", claim.serial, exc)
            raise ClaimRefused("broker unavailable; try later", status=503, retry_after=5) from None
        self._log.info("provisioned broker account for %s (claim from %s)", claim.serial, source)
        return credential


def _error(status: int, message: str, retry_after: int | None = None) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    body = {"error": {"code": "provisioning_refused", "message": message}}
    return web.json_response(body, status=status, headers=headers)


def provisioning_routes(service: ProvisioningService, clock: Callable[[], float]) -> web.RouteDef:
    """The `POST /api/v1/provision` route, for the relay's aiohttp application."""

    async def provision(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _error(413, "body too large")
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            return _error(413, "body too large")
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "body must be JSON")
        source = request.remote or "unknown"
        try:
            credential = await service.claim(body, source=source, now=clock())
        except ClaimRefused as exc:
            return _error(exc.status, str(exc), exc.retry_after)
        return web.json_response(
            {
                "username": credential.username,
                "password": credential.password,
                "client_id": credential.client_id,
            }
        )

    return web.post(PROVISION_PATH, provision)
