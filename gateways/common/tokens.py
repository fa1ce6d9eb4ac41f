"""JWT access and refresh tokens (pyjwt), shared by the auth service, the API gateway and
the WebSocket gateway. Claims: sub, type ("access" | "refresh"), jti, iat, exp."""
from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Literal

import jwt

from deltastream.settings import Settings

TokenType = Literal["access", "refresh"]


class TokenError(ValueError):
    """A token that is missing, malformed, expired or of the wrong type; str() is the reason."""


class WrongTokenType(TokenError):
    """A valid token of the other type (a refresh token where an access token is needed)."""


@dataclass(frozen=True)
class TokenClaims:
    sub: str
    type: TokenType
    jti: str
    iat: dt.datetime
    exp: dt.datetime


def issue_token(settings: Settings, subject: str, token_type: TokenType,
                now: dt.datetime | None = None) -> tuple[str, TokenClaims]:
    now = now or dt.datetime.now(dt.timezone.utc)
    lifetime = (dt.timedelta(minutes=settings.access_token_minutes) if token_type == "access"
                else dt.timedelta(days=settings.refresh_token_days))
    claims = TokenClaims(sub=subject, type=token_type, jti=uuid.uuid4().hex, iat=now, exp=now + lifetime)
    token = jwt.encode({"sub": claims.sub, "type": claims.type, "jti": claims.jti,
                        "iat": claims.iat, "exp": claims.exp},
                       settings.resolved_jwt_secret(), algorithm=settings.jwt_algorithm)
    return token, claims


def decode_token(settings: Settings, token: str | None, expected: TokenType = "access") -> TokenClaims:
    if not token:
        raise TokenError("missing token")
    try:
        payload = jwt.decode(token, settings.resolved_jwt_secret(), algorithms=[settings.jwt_algorithm],
                             options={"require": ["sub", "type", "jti", "iat", "exp"]})
    except jwt.ExpiredSignatureError:
        raise TokenError("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"invalid token: {exc}") from None
    if payload["type"] != expected:
        raise WrongTokenType(f"expected token type {expected!r}, got {payload['type']!r}")
    utc = dt.timezone.utc
    return TokenClaims(sub=payload["sub"], type=payload["type"], jti=payload["jti"],
                       iat=dt.datetime.fromtimestamp(payload["iat"], utc),
                       exp=dt.datetime.fromtimestamp(payload["exp"], utc))


class TokenCache:
    """Verified access tokens, kept until they expire: a data request then costs a dict
    lookup instead of an HMAC check and two JSON decodes. Bounded (least recently used out).

    Keyed by the whole token string, signature included, so only a token that verified
    under this cache's settings can hit; a hit past its `exp` is refused as `decode_token`
    refuses it (and dropped). A cached token of the other type is no hit: `decode_token`
    answers, with its WrongTokenType. One cache per app (the gateway's settings and secret)."""

    def __init__(self, settings: Settings, size: int = 4096, clock: Callable[[], float] = time.time) -> None:
        self.settings, self.size, self.clock = settings, size, clock
        self._verified: OrderedDict[str, tuple[TokenClaims, float]] = OrderedDict()

    def decode(self, token: str | None, expected: TokenType = "access") -> TokenClaims:
        hit = self._verified.get(token) if token else None
        if hit is not None and hit[0].type == expected:
            claims, expires = hit
            if self.clock() < expires:  # pyjwt: expired when exp <= now
                self._verified.move_to_end(token)
                return claims
            del self._verified[token]
            raise TokenError("token expired")
        claims = decode_token(self.settings, token, expected)
        self._verified[token] = (claims, claims.exp.timestamp())
        if len(self._verified) > self.size:
            self._verified.popitem(last=False)
        return claims
