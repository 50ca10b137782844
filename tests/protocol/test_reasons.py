from __future__ import annotations

from nvrshare.protocol.errors import TokenRejection
from nvrshare.protocol.permissions import DenyReason
from nvrshare.protocol.reasons import RefusalReason, refusal_for_denial, refusal_for_token


def test_every_token_rejection_maps_without_leaking_key_details() -> None:
    mapped = {rejection: refusal_for_token(rejection) for rejection in TokenRejection}
    assert mapped[TokenRejection.EXPIRED] is RefusalReason.TOKEN_EXPIRED
    assert mapped[TokenRejection.NOT_YET_VALID] is RefusalReason.NOT_YET_VALID
    assert mapped[TokenRejection.WRONG_DEVICE] is RefusalReason.WRONG_DEVICE
    for secretive in (
        TokenRejection.MALFORMED,
        TokenRejection.UNKNOWN_KEY,
        TokenRejection.BAD_SIGNATURE,
        TokenRejection.WRONG_AUDIENCE,
    ):
        assert mapped[secretive] is RefusalReason.TOKEN_INVALID


def test_every_denial_maps() -> None:
    assert {reason: refusal_for_denial(reason) for reason in DenyReason} == {
        DenyReason.CHANNEL_NOT_GRANTED: RefusalReason.CHANNEL_NOT_GRANTED,
        DenyReason.PERMISSION_NOT_GRANTED: RefusalReason.PERMISSION_DENIED,
        DenyReason.NOT_YET_VALID: RefusalReason.NOT_YET_VALID,
        DenyReason.EXPIRED: RefusalReason.SHARE_EXPIRED,
        DenyReason.OUTSIDE_PLAYBACK_WINDOW: RefusalReason.OUTSIDE_PLAYBACK_WINDOW,
    }


def test_refusal_reasons_cover_the_brief() -> None:
    required = {
        "permission_denied",
        "channel_not_granted",
        "device_offline",
        "device_busy",
        "token_expired",
        "token_invalid",
        "replayed",
        "revoked",
        "service_disabled",
        "timeout",
        "bad_request",
        "internal",
    }
    assert required <= {reason.value for reason in RefusalReason}
