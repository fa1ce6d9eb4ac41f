"""Users in MongoDB (`users`, unique email) and refresh-token rotation in Redis.

A user's `_id` is the normalised email as well: nx-27017 is fast only on `_id`, and the
insert then fails with a duplicate key on its own even before the unique index is made.
Passwords are hashed with argon2id (argon2-cffi defaults, rehashed on login when the
parameters change). Every refresh token issued is recorded as `auth:refresh:{jti}` with the
token's lifetime; refreshing takes the record with GETDEL, atomically, so a refresh token
works exactly once and a replayed one is refused.
"""
from __future__ import annotations

import datetime as dt
import logging

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError
from redis import Redis

from gateways.common.tokens import TokenClaims

log = logging.getLogger("deltastream.gateways.auth")

USERS = "users"
_hasher = PasswordHasher()


class DuplicateUser(ValueError):
    pass


class UserStore:
    def __init__(self, db: Database) -> None:
        self.users = db[USERS]

    def ensure_indexes(self) -> None:
        self.users.create_index([("email", ASCENDING)], unique=True)

    def create(self, email: str, password: str) -> dict:
        doc = {"_id": email, "email": email, "password_hash": _hasher.hash(password),
               "created_at": dt.datetime.now(dt.timezone.utc)}
        try:
            self.users.insert_one(doc)
        except DuplicateKeyError:
            raise DuplicateUser(email) from None
        return doc

    def authenticate(self, email: str, password: str) -> dict | None:
        """The user when the password matches, else None (same answer for unknown emails)."""
        doc = self.users.find_one({"_id": email})
        if doc is None:
            _hasher.hash(password)  # spend the same time, so timing does not reveal emails
            return None
        try:
            _hasher.verify(doc["password_hash"], password)
        except (VerificationError, InvalidHashError):
            return None
        if _hasher.check_needs_rehash(doc["password_hash"]):
            self.users.update_one({"_id": email}, {"$set": {"password_hash": _hasher.hash(password)}})
        return doc

    def exists(self, email: str) -> bool:
        return self.users.count_documents({"_id": email}, limit=1) > 0


class RefreshTokens:
    """The refresh tokens still valid, by jti."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    @staticmethod
    def _key(jti: str) -> str:
        return f"auth:refresh:{jti}"

    def remember(self, claims: TokenClaims) -> None:
        ttl = max(1, int((claims.exp - dt.datetime.now(dt.timezone.utc)).total_seconds()))
        self.redis.set(self._key(claims.jti), claims.sub, ex=ttl)

    def consume(self, claims: TokenClaims) -> bool:
        """True the first time a refresh token is used (and it was issued here), else False."""
        owner = self.redis.getdel(self._key(claims.jti))
        return owner is not None and owner.decode() == claims.sub
