"""Auth through the gateway: register, login, verify, refresh rotation, expiry, token types."""
from __future__ import annotations

import datetime as dt
import uuid

import jwt
import pytest

from gateways.common.tokens import issue_token

pytestmark = pytest.mark.integration


def new_user(client) -> tuple[dict, dict]:
    creds = {"email": f"U{uuid.uuid4().hex[:8]}@Example.com", "password": "s3cret pass phrase"}
    response = client.post("/api/auth/register", json=creds)
    assert response.status_code == 201, response.text
    assert response.json()["email"] == creds["email"].lower()
    tokens = client.post("/api/auth/login", json=creds).json()
    return creds, tokens


def test_register_login_verify(client, dataset):
    creds, tokens = new_user(client)
    claims = jwt.decode(tokens["access_token"], dataset.settings.jwt_secret, algorithms=["HS256"])
    assert claims["sub"] == creds["email"].lower() and claims["type"] == "access"
    assert {"exp", "iat", "jti"} <= claims.keys()
    assert claims["exp"] - claims["iat"] == dataset.settings.access_token_minutes * 60
    assert tokens["expires_in"] == dataset.settings.access_token_minutes * 60

    by_body = client.post("/api/auth/verify", json={"token": tokens["refresh_token"]})
    assert by_body.status_code == 200 and by_body.json()["type"] == "refresh"
    by_header = client.post("/api/auth/verify", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert by_header.json()["sub"] == creds["email"].lower() and by_header.json()["type"] == "access"
    assert client.post("/api/auth/verify", json={"token": "not.a.jwt"}).status_code == 401

    duplicate = client.post("/api/auth/register", json={**creds, "email": creds["email"].upper()})
    assert duplicate.status_code == 409 and "already exists" in duplicate.json()["detail"]
    wrong = client.post("/api/auth/login", json={**creds, "password": "not the password"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "invalid email or password"
    unknown = client.post("/api/auth/login", json={"email": "nobody@example.com", "password": "whatever123"})
    assert unknown.status_code == 401


@pytest.mark.parametrize("body, field", [
    ({"email": "not-an-email", "password": "long enough pw"}, "email"),
    ({"email": "a@b.co", "password": "short"}, "password"),
    ({"email": "a@b.co"}, "password"),
])
def test_register_validates_input(client, body, field):
    response = client.post("/api/auth/register", json=body)
    assert response.status_code == 422
    assert any(field in err["loc"] for err in response.json()["detail"])


def test_malformed_json_is_422(client):
    response = client.post("/api/auth/login", content=b'{"email": "a@b.co", "password": ',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "json_invalid"


def test_refresh_rotation_rejects_a_used_refresh_token(client, auth):
    _, tokens = new_user(client)
    first = client.post("/api/auth/refresh", json={"token": tokens["refresh_token"]})
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    again = client.post("/api/auth/refresh", json={"token": tokens["refresh_token"]})
    assert again.status_code == 401 and "already used" in again.json()["detail"]
    # the new pair works: its access token reads data, its refresh token rotates once more
    assert client.get("/api/data/products", headers={"Authorization": f"Bearer {rotated['access_token']}"}).status_code == 200
    assert client.post("/api/auth/refresh", json={"token": rotated["refresh_token"]}).status_code == 200
    # an access token is not a refresh token
    wrong_type = client.post("/api/auth/refresh", json={"token": rotated["access_token"]})
    assert wrong_type.status_code == 403


def test_data_routes_need_a_valid_access_token(client, dataset):
    assert client.get("/api/data/products").json()["detail"] == "missing token"
    missing = client.get("/api/analytics/max_pain/NIFTY")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"

    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=dataset.settings.access_token_minutes + 1)
    expired, _ = issue_token(dataset.settings, "someone@example.com", "access", now=past)
    response = client.get("/api/data/products", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401 and response.json()["detail"] == "token expired"

    refresh, _ = issue_token(dataset.settings, "someone@example.com", "refresh")
    response = client.get("/api/data/products", headers={"Authorization": f"Bearer {refresh}"})
    assert response.status_code == 403 and "expected token type 'access'" in response.json()["detail"]

    forged, _ = issue_token(dataset.settings.model_copy(update={"jwt_secret": "another secret entirely, long enough for HS256"}),
                            "someone@example.com", "access")
    response = client.get("/api/logs", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401 and "Signature verification failed" in response.json()["detail"]
