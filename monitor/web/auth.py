"""Who may do what in the web interface: passwords (scrypt), signed session cookies, CSRF tokens, roles, and
rate limits. No third-party code but itsdangerous (the signing Starlette's own sessions use)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

ROLES = ("viewer", "operator", "auditor", "admin")
# what each role may do, beyond reading the public pages
MAY = {
    "viewer": {"read"},
    "operator": {"read", "check", "note"},
    "auditor": {"read", "audit"},
    "admin": {"read", "check", "note", "audit"},
}
SESSION_COOKIE = "monitor_session"
SESSION_MAX_AGE_S = 12 * 3600

_N, _R, _P = 2**14, 8, 1  # scrypt cost: ~20 ms and 16 MB a check on these machines


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, key = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(base64.b64decode(key)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(key))


@dataclass(frozen=True, slots=True)
class Session:
    user: str
    role: str
    csrf: str

    def may(self, what: str) -> bool:
        return what in MAY.get(self.role, set())


class Sessions:
    """Sessions in a signed, timed cookie (nothing kept on the server): the user, the role and the CSRF token
    every form of the session carries."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()
        self._serializer = URLSafeTimedSerializer(secret, salt="monitor-session")

    def token_for(self, user: str) -> str:
        """The form token of a user signed in by a trusted proxy (no cookie of ours to carry one)."""
        return hmac.new(self._secret, f"csrf:{user}".encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self, user: str, password_hash: str) -> str:
        return self._serializer.dumps({"u": user, "p": stamp(password_hash), "c": secrets.token_urlsafe(24)})

    def read(self, cookie: str | None, account: Callable[[str], tuple[str, str, bool] | None]) -> Session | None:
        """The session of a cookie, checked against the account as it is now (`account(name)` gives its role,
        password hash and whether it is disabled): a disabled account or a changed password ends every
        session at once, and a changed role applies at once."""
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=SESSION_MAX_AGE_S)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        now = account(str(data.get("u", "")))
        if now is None:
            return None
        role, password_hash, disabled = now
        if disabled or role not in ROLES or not hmac.compare_digest(str(data.get("p", "")), stamp(password_hash)):
            return None
        return Session(user=str(data["u"]), role=role, csrf=str(data.get("c", "")))


def stamp(password_hash: str) -> str:
    """What a cookie carries of the password: enough to end sessions when it changes, nothing to attack."""
    return hashlib.sha256(f"session:{password_hash}".encode()).hexdigest()[:16]


def csrf_ok(session: Session | None, token: str | None) -> bool:
    return session is not None and bool(token) and hmac.compare_digest(session.csrf, token or "")


class RateLimit:
    """At most `count` events per key in `window_s` (in memory: per process)."""

    def __init__(self, count: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.count, self.window_s = count, window_s
        self._clock = clock
        self._events: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str) -> deque[float]:
        now = self._clock()
        q = self._events[key]
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def full(self, key: str) -> bool:
        return len(self._recent(key)) >= self.count

    def add(self, key: str) -> None:
        self._recent(key).append(self._clock())

    def refund(self, key: str) -> None:
        """Take back the newest event (a sign-in that turned out right counts against nobody)."""
        q = self._events.get(key)
        if q:
            q.pop()

    def allow(self, key: str) -> bool:
        """Count an event unless the limit is reached (then refuse it)."""
        if self.full(key):
            return False
        self.add(key)
        return True
