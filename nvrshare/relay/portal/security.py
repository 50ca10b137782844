"""Browser-facing security: session and pre-session cookies, CSRF tokens, headers.

The session cookie carries the service layer's own bearer session token (the
same one `AccountService.login` issues to API clients), so the portal has no
second session store and logging out or expiring ends both.  It is HttpOnly,
SameSite=Strict, scoped to the portal's path, Secure when served over TLS, and
lives no longer than the session itself.

CSRF tokens are derived, not stored: HMAC-SHA256 keyed with the session token
(or, before login, with a random HttpOnly pre-session cookie).  A page from
another site can neither read the cookie nor compute the token, and a token
leaked from one session is useless in another.  Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from aiohttp import web

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "PRE_SESSION_COOKIE",
    "SECURITY_HEADERS",
    "SESSION_COOKIE",
    "CookiePolicy",
    "csrf_token",
    "csrf_valid",
    "new_pre_session",
]

SESSION_COOKIE = "nvrshare_session"
PRE_SESSION_COOKIE = "nvrshare_pre"
_CSRF_CONTEXT = b"nvrshare/portal/csrf/v1"
_MAX_COOKIE = 128

# No inline script or style anywhere: every rule is 'self' or nothing.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # data: only for the account QR code, rendered inline with its payload.
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def new_pre_session() -> str:
    return secrets.token_urlsafe(32)


def _usable(secret: str | None) -> bool:
    return isinstance(secret, str) and 16 <= len(secret) <= _MAX_COOKIE


def csrf_token(secret: str) -> str:
    """The CSRF token for forms of the session (or pre-session) named by `secret`."""
    return hmac.new(secret.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def csrf_valid(secret: str | None, submitted: object) -> bool:
    """Whether `submitted` is the CSRF token for `secret` (constant-time; False if absent)."""
    if not _usable(secret) or not isinstance(submitted, str) or len(submitted) != 64:
        return False
    assert secret is not None
    return hmac.compare_digest(csrf_token(secret), submitted)


class CookiePolicy:
    """Sets and clears the portal's cookies with one set of flags."""

    def __init__(self, *, secure: bool, path: str) -> None:
        self.secure = secure
        self.path = path

    def _set(self, response: web.StreamResponse, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max(0, max_age),
            path=self.path,
            httponly=True,
            samesite="Strict",
            secure=self.secure,
        )

    def set_session(self, response: web.StreamResponse, token: str, max_age: int) -> None:
        self._set(response, SESSION_COOKIE, token, max_age)

    def set_pre_session(self, response: web.StreamResponse, value: str) -> None:
        # Long enough to fill in a form; the session proper replaces it.
        self._set(response, PRE_SESSION_COOKIE, value, 3600)

    def clear_session(self, response: web.StreamResponse) -> None:
        response.del_cookie(
            SESSION_COOKIE, path=self.path, secure=self.secure, httponly=True, samesite="Strict"
        )

    @staticmethod
    def read(request: web.Request, name: str) -> str | None:
        value = request.cookies.get(name)
        return value if _usable(value) else None
