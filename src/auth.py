"""Bearer JWTs for catalog writes (API.md "Authentication"): HS256 with JWT_SECRET, `exp`
required, `aud` equal to JWT_AUDIENCE. Reads and listening need no token.

LIHIL TRAP (the JWT plugin issues tokens without `exp`, and a missing header is a 422):
tokens are minted and checked here with PyJWT, and the edge (`src.edge`) asks writes for them.
"""

import secrets
import time
from pathlib import Path

import jwt

from src.config import Settings
from src.errors import Unauthorized

ALGORITHM = "HS256"


def dev_secret_file(settings: Settings) -> Path:
    """Where `make run` keeps a development secret when JWT_SECRET is unset: in the data
    folder (DATA_DIR, `.data/` by default; not in git)."""
    return settings.data_dir / "jwt-secret"


def mint(secret: str, *, audience: str, subject: str = "catalog-admin", ttl_s: int = 3600) -> str:
    now = int(time.time())
    claims = {"sub": subject, "aud": audience, "iat": now, "exp": now + ttl_s}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(authorization: str | None, secret: str | None, *, audience: str) -> dict[str, object]:
    """The token's claims, or Unauthorized saying what is wrong (never another error)."""
    if not authorization:
        raise Unauthorized("catalog writes need Authorization: Bearer <token>", error=None)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "the Authorization header must be: Bearer <token>", error="invalid_request"
        )
    if not secret:
        raise Unauthorized("this server has no JWT_SECRET, so it accepts no token")
    try:
        claims: dict[str, object] = jwt.decode(
            token.strip(),
            secret,
            algorithms=[ALGORITHM],  # never "none", never what the token's header claims
            audience=audience,
            options={"require": ["exp", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired") from None
    except jwt.InvalidAudienceError:
        raise Unauthorized(f"the token is not for this audience ({audience})") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"the token has no {exc.claim} claim") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("the token is malformed or its signature is wrong") from None
    return claims


def dev_secret(path: Path) -> str:
    """The development secret, created on first use (readable by its owner only)."""
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    return secret
