"""The one settings reader.

Precedence: the process environment, then the `.env` file, then the defaults below.
Every setting is listed in `.env.example`. A malformed value, or an unknown name in `.env`,
stops start-up with a message naming the variable.

LIHIL TRAP (config ignores os.environ): lihil's own `lhl_read_config` reads .toml/.env
files and argv only, never the environment, and `Lihil()` without `app_config` parses
`sys.argv` (uvicorn's!). So we read settings here and always hand lihil an explicit
`AppConfig` built from them (see `src.app.create_app`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal

import msgspec

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(Exception):
    """A setting is malformed; the message names the variable."""


PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
MIN_SECRET_BYTES = 32
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Database
    DATABASE_URL: str | None = None
    DB_POOL_MIN: Annotated[int, msgspec.Meta(ge=0)] = 1
    DB_POOL_MAX: PositiveInt = 10
    DB_CONNECT_TIMEOUT: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    DB_COMMAND_TIMEOUT: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    SEED_DEMO_DATA: bool = True
    # Everything a run keeps (the database folder and its lock, the local Redis's folder,
    # the development secret) lives in this one folder; nothing is written outside it.
    DATA_DIR: str = str(PROJECT_ROOT / ".data")
    # Serving (read by scripts/run.py)
    HOST: str = "127.0.0.1"
    PORT: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    WORKERS: PositiveInt = 1
    LOG_LEVEL: Literal["debug", "info", "warning", "error"] = "info"
    ENV: Literal["development", "production"] = "development"
    # Authentication of catalog writes (API.md "Authentication")
    JWT_SECRET: str | None = None
    JWT_AUDIENCE: str = "catalog"
    # Slow clients (src/server.py, served with `--http src.server:HttpProtocol`): seconds a
    # connection may take to send a request head, and open connections per process
    # (0: as many as the open-files limit allows, less a reserve).
    HEADER_TIMEOUT_S: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 10.0
    MAX_CONNECTIONS: Annotated[int, msgspec.Meta(ge=0)] = 0
    # Request heads (request line and headers) larger than this, or with more headers, are
    # refused with 431 (414 for the request line alone) before they are read further.
    MAX_HEADER_BYTES: Annotated[int, msgspec.Meta(ge=1024, le=1024 * 1024)] = 16 * 1024
    MAX_HEADERS: Annotated[int, msgspec.Meta(ge=8, le=1000)] = 100
    # Seconds a request body may take to arrive after its head (408 and close beyond).
    BODY_TIMEOUT_S: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 10.0
    # Host values served (comma-separated; any port). Empty: localhost, 127.0.0.1, ::1 and
    # HOST. Any other Host is 400, for HTTP and WebSocket handshakes alike.
    ALLOWED_HOSTS: str = ""
    # Limits (API.md "Limits")
    MAX_BODY_BYTES: PositiveInt = 1024 * 1024
    WRITE_RATE_PER_MIN: PositiveInt = 600
    WS_MAX_MESSAGES_PER_S: PositiveInt = 100
    WS_MAX_CONNECTIONS_PER_ADDRESS: Annotated[int, msgspec.Meta(ge=0)] = 0  # 0: no limit
    TRUSTED_PROXIES: str = ""  # comma-separated addresses or networks (CIDR)
    LOG_FORMAT: Literal["text", "json"] = "text"
    # WebSockets
    ALLOWED_ORIGINS: str = ""
    BROKER: Literal["memory", "redis"] = "memory"
    REDIS_URL: str | None = None
    # Seconds a process's presence lease lasts in Redis; a process that dies stops counting
    # within it (its heartbeat renews it every third of it).
    PRESENCE_TTL_S: Annotated[float, msgspec.Meta(ge=0.5, le=300)] = 5.0
    WS_MAX_MESSAGE_BYTES: PositiveInt = 64 * 1024
    WS_SEND_QUEUE: PositiveInt = 256
    WS_PING_INTERVAL: Annotated[float, msgspec.Meta(gt=0)] = 20.0
    COUNTER_WINDOW_MS: Annotated[int, msgspec.Meta(ge=0, le=250)] = 50
    MAX_SESSION_USERS: PositiveInt = 1000
    DEFAULT_SESSION_USERS: PositiveInt = 10
    # Catalog feed (/ws/catalog): seconds of changes kept for `after=` replays (7 days), and
    # seconds between fallback polls of the outbox when no NOTIFY wakes the listener.
    CATALOG_FEED_RETENTION: Annotated[float, msgspec.Meta(gt=0)] = 7 * 24 * 3600.0
    CATALOG_FEED_POLL_S: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 5.0
    # Reads at memory speed (API.md): catalog GET answers kept in each process, dropped by the
    # feed's changes; at most CACHE_MAX_ENTRIES (least recently used out); a GET sending
    # Catalog-Position the feed has not reached waits at most CACHE_WAIT_MS for it to read the
    # database (then reads PostgreSQL itself).
    CACHE: Literal["on", "off"] = "on"
    CACHE_MAX_ENTRIES: PositiveInt = 10_000
    CACHE_WAIT_MS: Annotated[int, msgspec.Meta(ge=0, le=60_000)] = 1000

    def __post_init__(self) -> None:
        if self.DB_POOL_MIN > self.DB_POOL_MAX:
            raise ConfigError("DB_POOL_MIN must not exceed DB_POOL_MAX")
        if self.DEFAULT_SESSION_USERS > self.MAX_SESSION_USERS:
            raise ConfigError("DEFAULT_SESSION_USERS must not exceed MAX_SESSION_USERS")
        if self.ENV == "production" and len((self.JWT_SECRET or "").encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"ENV=production needs JWT_SECRET of at least {MIN_SECRET_BYTES} bytes "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        try:
            self.trusted_proxies  # noqa: B018  (parsed here so a bad one stops start-up)
        except ValueError as exc:
            raise ConfigError(f"invalid setting TRUSTED_PROXIES: {exc}") from exc
        if self.BROKER == "redis" and not self.REDIS_URL:
            raise ConfigError("BROKER=redis needs REDIS_URL")
        if self.REDIS_URL and not self.REDIS_URL.startswith(REDIS_SCHEMES):
            raise ConfigError(f"REDIS_URL must start with {', '.join(REDIS_SCHEMES)}")
        if self.WORKERS > 1 and self.BROKER == "memory":
            raise ConfigError(
                f"WORKERS={self.WORKERS} with BROKER=memory: each worker would count, admit "
                "and broadcast only its own clients; serve one worker (WORKERS=1), or use "
                "BROKER=redis with REDIS_URL"
            )

    @property
    def trusted_proxies(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return tuple(ip_network(p.strip()) for p in self.TRUSTED_PROXIES.split(",") if p.strip())

    @property
    def data_dir(self) -> Path:
        return Path(self.DATA_DIR)

    @property
    def pgdata_dir(self) -> Path:
        """The embedded PostgreSQL's data folder (its lock file sits beside it)."""
        return self.data_dir / "pg"

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """Host names served (lower case, no port, IPv6 without brackets)."""
        given = [h.strip() for h in self.ALLOWED_HOSTS.split(",") if h.strip()]
        hosts = given or ["localhost", "127.0.0.1", "::1", self.HOST]
        return frozenset(h.lower().removeprefix("[").removesuffix("]") for h in hosts)

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        return tuple(o.strip() for o in self.ALLOWED_ORIGINS.split(",") if o.strip())


FIELDS = frozenset(Settings.__struct_fields__)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a dotenv file: KEY=VALUE lines, `#` comments, optional quotes."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ConfigError(f"{path}:{lineno}: expected KEY=VALUE, got {raw!r}")
        if key not in FIELDS:
            raise ConfigError(f"{path}:{lineno}: unknown setting {key!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def settings_sources(
    environ: Mapping[str, str] | None = None, env_file: Path | None = PROJECT_ROOT / ".env"
) -> dict[str, str]:
    """The settings that were given (the environment over `.env`; empty means unset), as
    text, before defaults and validation."""
    environ = os.environ if environ is None else environ
    raw = dict(read_env_file(env_file)) if env_file else {}
    raw.update({k: v for k, v in environ.items() if k in FIELDS})
    return {k: v for k, v in raw.items() if v != ""}


def load_settings(
    environ: Mapping[str, str] | None = None,
    env_file: Path | None = PROJECT_ROOT / ".env",
    **overrides: object,
) -> Settings:
    """Build Settings from the environment, then `.env`, then defaults; fail fast."""
    raw: dict[str, object] = dict(settings_sources(environ, env_file))
    raw.update(overrides)
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        # msgspec says "... - at `$.PORT`": lead with the variable's name.
        message = str(exc)
        name = message.rsplit("$.", 1)[-1].rstrip("`") if "$." in message else "settings"
        raise ConfigError(f"invalid setting {name}: {message.split(' - at ')[0]}") from exc
