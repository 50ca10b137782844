"""Where the CLI keeps its login: `$NVRSHARE_HOME/session.json` or `~/.config/nvrshare/`.

The file holds a bearer session, so it is created 0600 inside a 0700
directory, written atomically (temp file + rename), and refused if someone
else can read it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from nvrshare.client.errors import ClientError

__all__ = ["SavedSession", "config_home", "delete_session", "load_session", "save_session"]


@dataclass(frozen=True, kw_only=True, slots=True)
class SavedSession:
    relay: str
    token: str
    account_id: str
    expires_at: float


def config_home() -> Path:
    home = os.environ.get("NVRSHARE_HOME")
    return Path(home) if home else Path.home() / ".config" / "nvrshare"


def _path() -> Path:
    return config_home() / "session.json"


def save_session(session: SavedSession) -> Path:
    directory = config_home()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = _path()
    tmp = path.with_name(path.name + ".tmp")
    data = json.dumps(
        {
            "relay": session.relay,
            "token": session.token,
            "account_id": session.account_id,
            "expires_at": session.expires_at,
        }
    ).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def load_session(*, now: float | None = None) -> SavedSession:
    """The saved session; `ClientError` if there is none, it is unsafe, or it expired."""
    path = _path()
    try:
        if path.stat().st_mode & 0o077:
            raise ClientError(f"{path} is readable by others: run chmod 600 on it")
        raw = json.loads(path.read_text("utf-8"))
        session = SavedSession(
            relay=str(raw["relay"]),
            token=str(raw["token"]),
            account_id=str(raw["account_id"]),
            expires_at=float(raw["expires_at"]),
        )
    except FileNotFoundError:
        raise ClientError("not logged in: run `nvrshare account login`") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClientError(f"cannot read {path}: {exc}") from exc
    if session.expires_at <= (time.time() if now is None else now):
        raise ClientError("the session expired: run `nvrshare account login` again")
    return session


def delete_session() -> None:
    _path().unlink(missing_ok=True)
