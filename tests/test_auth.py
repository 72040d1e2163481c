"""Catalog writes need a bearer JWT (API.md "Authentication"); reads and listening don't."""

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import msgspec
import pytest
from lihil.vendors import TestClient

from src.app import create_app
from src.auth import dev_secret, mint, verify
from src.config import ConfigError, Settings
from src.errors import Unauthorized
from tests.helpers import TEST_JWT_SECRET, make_settings

NEW = {"product_name": "Guarded", "brand_id": 1}


@pytest.fixture
def anonymous(settings: Settings) -> Iterator[TestClient]:
    """The app, with no token on any request."""
    with TestClient(create_app(settings)) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unsigned(claims: dict[str, object]) -> str:
    """A token with `alg: none`: no signature at all."""

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def claims(**extra: object) -> dict[str, object]:
    return {"sub": "t", "aud": "catalog", "exp": int(time.time()) + 60, **extra}


BAD_TOKENS = {
    "expired": jwt.encode(claims(exp=int(time.time()) - 10), TEST_JWT_SECRET, "HS256"),
    "wrong-secret": jwt.encode(claims(), "another-secret-" + "y" * 40, "HS256"),
    "wrong-audience": jwt.encode(claims(aud="billing"), TEST_JWT_SECRET, "HS256"),
    "no-exp": jwt.encode({"sub": "t", "aud": "catalog"}, TEST_JWT_SECRET, "HS256"),
    "no-aud": jwt.encode({"sub": "t", "exp": int(time.time()) + 60}, TEST_JWT_SECRET, "HS256"),
    "alg-none": unsigned(claims()),
    "hs512": jwt.encode(claims(), TEST_JWT_SECRET + "z" * 30, "HS512"),
    "garbage": "not.a.jwt",
    "non-ascii": "é.é.é",
}


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
def test_a_bad_token_is_a_401_problem_with_a_bearer_challenge(
    anonymous: TestClient, name: str
) -> None:
    header = f"Bearer {BAD_TOKENS[name]}".encode()  # bytes: a UTF-8 token goes out as sent
    response = anonymous.post("/products", json=NEW, headers={"Authorization": header})
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "unauthorized"
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="catalog", error="invalid_token"')
    assert anonymous.get("/products/1001").status_code == 404  # nothing written


def test_no_token_is_a_401_without_an_error_code(anonymous: TestClient) -> None:
    """RFC 6750: a request with no credentials gets the challenge alone."""
    for method, path in [("POST", "/products"), ("PUT", "/products/1"), ("DELETE", "/products/1")]:
        response = anonymous.request(method, path, json=NEW)
        assert response.status_code == 401, (method, response.text)
        assert response.headers["www-authenticate"] == 'Bearer realm="catalog"'
    assert anonymous.get("/products/1").status_code == 200  # not deleted


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "token abc"])
def test_a_malformed_authorization_header_is_an_invalid_request(
    anonymous: TestClient, header: str
) -> None:
    response = anonymous.post("/products", json=NEW, headers={"Authorization": header})
    assert response.status_code == 401
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


def test_a_valid_token_writes_and_reads_stay_public(anonymous: TestClient) -> None:
    token = mint(TEST_JWT_SECRET, audience="catalog")
    created = anonymous.post("/products", json=NEW, headers=bearer(token))
    assert created.status_code == 201, created.text
    assert anonymous.get(created.headers["location"]).status_code == 200
    assert anonymous.get("/brands").status_code == 200
    assert anonymous.head("/products").status_code == 200


def test_unknown_routes_are_404_not_401(anonymous: TestClient) -> None:
    assert anonymous.post("/nowhere", json=NEW).status_code == 404
    assert anonymous.post("/time", json=NEW).status_code == 405  # GET only: no write there


def test_a_server_without_a_secret_accepts_no_token(database_url: str) -> None:
    settings = make_settings(DATABASE_URL=database_url, JWT_SECRET=None)
    with TestClient(create_app(settings)) as c:
        response = c.post("/products", json=NEW, headers=bearer(mint("s" * 40, audience="catalog")))
    assert response.status_code == 401
    assert "no JWT_SECRET" in response.json()["detail"]


def test_verify_never_raises_anything_but_unauthorized() -> None:
    for raw in [
        "Bearer " + "a" * 10_000,
        "Bearer \x00",
        "Bearer a.b",
        "Bearer ....",
        "Bearer e30.e30.",
    ]:
        with pytest.raises(Unauthorized):
            verify(raw, TEST_JWT_SECRET, audience="catalog")


def test_production_refuses_a_missing_or_short_secret() -> None:
    for secret in (None, "short"):
        with pytest.raises(ConfigError, match="ENV=production needs JWT_SECRET of at least 32"):
            make_settings(ENV="production", JWT_SECRET=secret)
    assert make_settings(ENV="production", JWT_SECRET="s" * 32).ENV == "production"


def test_the_development_secret_is_made_once_and_kept_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "jwt-secret"
    first = dev_secret(path)
    assert len(first) >= 32 and dev_secret(path) == first
    assert path.stat().st_mode & 0o777 == 0o600


# --- the write rate ---------------------------------------------------------------------


def test_writes_over_the_rate_are_429_with_retry_after(settings: Settings) -> None:
    limited = msgspec.structs.replace(settings, WRITE_RATE_PER_MIN=3)
    with TestClient(create_app(limited)) as c:
        token = bearer(mint(TEST_JWT_SECRET, audience="catalog"))
        statuses = [c.post("/products", json=NEW, headers=token).status_code for _ in range(4)]
        assert statuses == [201, 201, 201, 429]
        refused = c.post("/products", json=NEW)  # counted before the token is checked
        assert refused.status_code == 429
        assert refused.json()["type"] == "too-many-requests"
        assert int(refused.headers["retry-after"]) >= 1
        assert c.get("/products/1").status_code == 200  # reads are not limited


def test_forwarded_addresses_count_only_behind_a_trusted_proxy(settings: Settings) -> None:
    """Each X-Forwarded-For client has its own allowance behind a trusted proxy; from an
    untrusted peer the header is ignored (anyone could write it)."""
    token = bearer(mint(TEST_JWT_SECRET, audience="catalog"))

    def run(trusted: str) -> list[int]:
        limited = msgspec.structs.replace(settings, WRITE_RATE_PER_MIN=1, TRUSTED_PROXIES=trusted)
        with TestClient(create_app(limited), client=("10.0.0.5", 1234)) as c:
            return [
                c.post("/products", json=NEW, headers={**token, "X-Forwarded-For": ip}).status_code
                for ip in ("203.0.113.1", "203.0.113.2", "203.0.113.1")
            ]

    assert run("10.0.0.0/8") == [201, 201, 429]
    assert run("") == [201, 429, 429]
