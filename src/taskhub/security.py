"""Password hashing (bcrypt) and access tokens (PyJWT, HS256)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import bcrypt
import jwt
from anyio import to_thread

ALGORITHM = "HS256"
# bcrypt reads at most 72 bytes; longer passwords are refused rather than silently truncated.
MAX_PASSWORD_BYTES = 72
MIN_PASSWORD_CHARS = 8
# Tokens issued "in the future" by more than this are refused (clock skew allowance).
IAT_LEEWAY_SECONDS = 30


def hash_password_sync(password: str, *, rounds: int) -> str:
    """Hash a password with a fresh salt."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


async def hash_password(password: str, *, rounds: int) -> str:
    """Hash off the event loop: bcrypt is deliberately slow."""
    return await to_thread.run_sync(lambda: hash_password_sync(password, rounds=rounds))


@lru_cache(maxsize=4)
def _dummy_hash(rounds: int) -> bytes:
    return bcrypt.hashpw(b"dummy-password-for-timing", bcrypt.gensalt(rounds))


async def verify_password(password: str, hashed: str | None, *, rounds: int) -> bool:
    """Check a password; with no hash, burn the same time against a dummy one."""
    raw = password.encode()
    if len(raw) > MAX_PASSWORD_BYTES:
        raw = raw[:MAX_PASSWORD_BYTES]
        too_long = True
    else:
        too_long = False

    def _check() -> bool:
        target = hashed.encode() if hashed else _dummy_hash(rounds)
        try:
            ok = bcrypt.checkpw(raw, target)
        except ValueError:
            return False
        return ok and hashed is not None and not too_long

    return await to_thread.run_sync(_check)


# Bounds of the claims a token may carry (ours are 32 hex characters and small counters).
MAX_JTI_CHARS = 64
MAX_EPOCH = 2**31 - 1


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """The claims of an access token whose signature and times are valid.

    Whether the token is still valid is the database's answer, on every request
    (taskhub.auth.tokens): its user exists and is active, `epoch` is the user's current
    token epoch (a password change, deactivation or logout-all moves it on), and `jti` has
    not been logged out.
    """

    user_id: int
    epoch: int
    jti: str
    expires_at: datetime

    @property
    def caller_params(self) -> dict[str, object]:
        """The bound parameters of a statement that checks the token's caller
        (`:user_id`, `:epoch`, `:jti`: taskhub.auth.tokens.valid_caller)."""
        return {"user_id": self.user_id, "epoch": self.epoch, "jti": self.jti}


def create_access_token(*, user_id: int, epoch: int, key: str, expires_in: timedelta) -> str:
    """Sign an access token for a user at their current token epoch."""
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "ep": epoch,
        "iat": int(now.timestamp()),
        "exp": int((now + expires_in).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def decode_access_token(token: str, *, key: str) -> TokenClaims | None:
    """Verify a token's signature, algorithm, claims and times; None when it is not valid.

    The signature check of a given token string is cached (it cannot change), but the
    expiry is checked against the clock on every call, and nothing here says whether the
    token was ended since: that is the database's answer (taskhub.auth.tokens), asked on
    every request.
    """
    if len(token) > 4096:
        return None
    claims = _verified_claims(token, key)
    if claims is None or claims.expires_at.timestamp() <= time.time():
        return None
    return claims


@lru_cache(maxsize=8192)
def _verified_claims(token: str, key: str) -> TokenClaims | None:
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "exp", "iat", "jti", "ep"]},
        )
        user_id = int(claims["sub"])
        iat = float(claims["iat"])
        expires_at = datetime.fromtimestamp(float(claims["exp"]), UTC)
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError, OSError):
        return None
    epoch, jti = claims["ep"], claims["jti"]
    if iat > time.time() + IAT_LEEWAY_SECONDS or not 0 < user_id < 2**31:
        return None
    # JSON true is not an epoch; a token without `ep` predates epochs and is not accepted.
    if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
        return None
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_CHARS:
        return None
    return TokenClaims(user_id=user_id, epoch=epoch, jti=jti, expires_at=expires_at)
