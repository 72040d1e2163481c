"""The one settings reader: environment first, then .env, then defaults; fail fast."""

from pathlib import Path

import pytest

from src.config import ConfigError, Settings, load_settings


def test_defaults_without_environment_or_file() -> None:
    """With nothing set, the documented defaults apply."""
    settings = load_settings(environ={}, env_file=None)
    assert settings.DATABASE_URL is None
    assert (settings.HOST, settings.PORT, settings.BROKER) == ("127.0.0.1", 8000, "memory")
    assert settings.WS_MAX_MESSAGE_BYTES == 65536 and settings.COUNTER_WINDOW_MS == 50


def test_environment_wins_over_env_file(tmp_path: Path) -> None:
    """A variable in the environment overrides the same one in .env."""
    env_file = tmp_path / ".env"
    env_file.write_text("# comment\nPORT=9001\nDB_POOL_MAX='7'\nexport HOST=0.0.0.0\n")
    settings = load_settings(environ={"PORT": "9002", "UNRELATED": "x"}, env_file=env_file)
    assert (settings.PORT, settings.DB_POOL_MAX, settings.HOST) == (9002, 7, "0.0.0.0")


@pytest.mark.parametrize(
    ("environ", "name"),
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"DB_POOL_MAX": "0"}, "DB_POOL_MAX"),
        ({"BROKER": "kafka"}, "BROKER"),
        ({"COUNTER_WINDOW_MS": "251"}, "COUNTER_WINDOW_MS"),
    ],
)
def test_malformed_value_names_the_variable(environ: dict[str, str], name: str) -> None:
    """A malformed value stops start-up with a message that names the variable."""
    with pytest.raises(ConfigError, match=f"invalid setting {name}"):
        load_settings(environ=environ, env_file=None)


def test_unknown_name_in_env_file_is_an_error(tmp_path: Path) -> None:
    """A typo in .env is reported with its line, not silently ignored."""
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=1\nDATABSE_URL=postgresql://x\n")
    with pytest.raises(ConfigError, match=r"\.env:2: unknown setting 'DATABSE_URL'"):
        load_settings(environ={}, env_file=env_file)


def test_inconsistent_settings_are_refused() -> None:
    """Cross-field rules: pool bounds, session defaults, redis needs a Redis URL."""
    with pytest.raises(ConfigError, match="DB_POOL_MIN"):
        load_settings(environ={"DB_POOL_MIN": "5", "DB_POOL_MAX": "2"}, env_file=None)
    with pytest.raises(ConfigError, match="REDIS_URL"):
        load_settings(environ={"BROKER": "redis"}, env_file=None)
    with pytest.raises(ConfigError, match="REDIS_URL must start with redis://"):
        load_settings(environ={"BROKER": "redis", "REDIS_URL": "localhost:6379"}, env_file=None)


def test_several_workers_on_the_in_process_broker_are_refused() -> None:
    """Each worker would count, admit and broadcast only its own clients: start-up stops,
    naming both settings."""
    with pytest.raises(ConfigError, match="WORKERS=2 with BROKER=memory"):
        load_settings(environ={"WORKERS": "2"}, env_file=None)


def test_several_workers_on_the_redis_broker_are_accepted() -> None:
    """BROKER=redis with REDIS_URL serves any number of workers."""
    environ = {"WORKERS": "4", "BROKER": "redis", "REDIS_URL": "redis://127.0.0.1:6379/0"}
    settings = load_settings(environ=environ, env_file=None)
    assert (settings.WORKERS, settings.BROKER, settings.PRESENCE_TTL_S) == (4, "redis", 5.0)


def test_every_setting_is_documented_in_env_example() -> None:
    """.env.example lists every setting the app reads."""
    example = (Path(__file__).parent.parent / ".env.example").read_text()
    documented = {line.lstrip("# ").split("=")[0] for line in example.splitlines() if "=" in line}
    assert set(Settings.__struct_fields__) <= documented
