"""`/auth`: register, login (access + refresh JWT), verify, refresh with rotation."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, Field

from gateways.auth.users import DuplicateUser, RefreshTokens, UserStore
from gateways.common.deps import DbDep, RedisDep, ResourcesDep, rate_limited_ip
from gateways.common.errors import responses
from gateways.common.jsonio import storable
from gateways.common.tokens import TokenError, WrongTokenType, decode_token, issue_token
from schemas.records import Timestamp

_EMAIL = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
Email = Annotated[str, Field(min_length=3, max_length=254, pattern=_EMAIL,
                             examples=["trader@example.com"]), AfterValidator(str.lower)]
Password = Annotated[str, Field(min_length=8, max_length=128, examples=["correct horse battery"]),
                     AfterValidator(storable)]


class Credentials(BaseModel):
    email: Email
    password: Password


class Registered(BaseModel):
    email: str
    created_at: Timestamp


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="access token lifetime, seconds")
    refresh_expires_in: int = Field(description="refresh token lifetime, seconds")


class TokenBody(BaseModel):
    token: str = Field(min_length=1, max_length=4096)


class Verified(BaseModel):
    valid: Literal[True] = True
    sub: str
    type: Literal["access", "refresh"]
    jti: str
    iat: Timestamp
    exp: Timestamp


_bearer = HTTPBearer(auto_error=False)


def auth_router() -> APIRouter:
    router = APIRouter(prefix="/auth", tags=["auth"], dependencies=[Depends(rate_limited_ip)])

    def pair(resources, redis, subject: str) -> TokenPair:
        settings = resources.settings
        access, _ = issue_token(settings, subject, "access")
        refresh, claims = issue_token(settings, subject, "refresh")
        RefreshTokens(redis).remember(claims)
        return TokenPair(access_token=access, refresh_token=refresh,
                         expires_in=settings.access_token_minutes * 60,
                         refresh_expires_in=settings.refresh_token_days * 86_400)

    @router.post("/register", response_model=Registered, status_code=201,
                 responses=responses(400, 409, 429, 503))
    def register(body: Credentials, db: DbDep, resources: ResourcesDep) -> Registered:
        users = UserStore(db)
        if not resources.extras.get("users_indexed"):
            users.ensure_indexes()
            resources.extras["users_indexed"] = True
        try:
            doc = users.create(body.email, body.password)
        except DuplicateUser:
            raise HTTPException(409, f"a user with email {body.email} already exists") from None
        return Registered(email=doc["email"], created_at=doc["created_at"])

    @router.post("/login", response_model=TokenPair, responses=responses(400, 401, 429, 503))
    def login(body: Credentials, db: DbDep, redis: RedisDep, resources: ResourcesDep) -> TokenPair:
        if UserStore(db).authenticate(body.email, body.password) is None:
            raise HTTPException(401, "invalid email or password", headers={"WWW-Authenticate": "Bearer"})
        return pair(resources, redis, body.email)

    @router.post("/verify", response_model=Verified, responses=responses(400, 401, 429))
    def verify(request: Request, resources: ResourcesDep,
               credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
               body: Annotated[TokenBody | None, Body()] = None) -> Verified:
        """Check a token given as `{"token": ...}` or as `Authorization: Bearer`; either type."""
        token = body.token if body is not None else (credentials.credentials if credentials else None)
        try:
            claims = decode_token(resources.settings, token, "access")
        except WrongTokenType:
            claims = decode_token(resources.settings, token, "refresh")
        except TokenError as exc:
            raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
        return Verified(sub=claims.sub, type=claims.type, jti=claims.jti, iat=claims.iat, exp=claims.exp)

    @router.post("/refresh", response_model=TokenPair, responses=responses(400, 401, 403, 429, 503))
    def refresh(body: TokenBody, redis: RedisDep, resources: ResourcesDep) -> TokenPair:
        """A new access + refresh pair for a refresh token, which is then used up."""
        try:
            claims = decode_token(resources.settings, body.token, "refresh")
        except WrongTokenType as exc:
            raise HTTPException(403, str(exc)) from None
        except TokenError as exc:
            raise HTTPException(401, str(exc)) from None
        if not RefreshTokens(redis).consume(claims):
            raise HTTPException(401, "refresh token already used or revoked; log in again")
        return pair(resources, redis, claims.sub)

    return router

