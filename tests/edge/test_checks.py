"""The edge's rules as plain functions: one reading of integers, hosts and origins."""

import pytest

from src.edge.checks import Hosts, canonical_int, host_name, repeated_parameters
from tests.helpers import make_settings


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("7", 7), ("10", 10), ("2147483647", 2147483647), ("9" * 20, int("9" * 20))],
)
def test_canonical_decimal_integers_are_read(text: str, value: int) -> None:
    """0, or a digit 1-9 followed by digits."""
    assert canonical_int(text) == value


@pytest.mark.parametrize(
    "text",
    ["", "05", "00", "+5", "-5", " 5", "5 ", "1e2", "1.0", "1_000", "٥", "0x10", "9" * 21, "1,2"],
)
def test_every_other_spelling_is_refused(text: str) -> None:
    """A sign, a leading zero, a fraction, an exponent, spaces, separators, non-ASCII digits
    and absurd lengths are not integers here (Python's int() takes several of them)."""
    assert canonical_int(text) is None


def test_repeated_parameters_are_named_once_each() -> None:
    assert repeated_parameters(b"a=1&b=2&a=3&b=4&c=5") == ["a", "b"]
    assert repeated_parameters(b"a=1&b=2") == []
    assert repeated_parameters(b"") == []


@pytest.mark.parametrize(
    ("authority", "name"),
    [
        ("localhost:8000", "localhost"),
        ("API.Example", "api.example"),
        ("[::1]:8000", "::1"),
        ("127.0.0.1", "127.0.0.1"),
        ("evil.example:notaport", None),
        ("user@evil.example", None),
        ("", None),
    ],
)
def test_host_names_are_read_without_port_or_brackets(authority: str, name: str | None) -> None:
    assert host_name(authority) == name


def test_default_hosts_are_local_and_host_any_port() -> None:
    """ALLOWED_HOSTS unset: localhost, 127.0.0.1, ::1 and HOST, on any port."""
    hosts = Hosts(make_settings(ALLOWED_HOSTS="", HOST="10.1.2.3"))
    for host in ["localhost", "localhost:8000", "127.0.0.1:1", "[::1]:8000", "10.1.2.3:80"]:
        assert hosts.host_allowed(host.encode()), host
    for host in ["evil.example", "evil.example:8000", "localhost.evil.example", "[::1"]:
        assert not hosts.host_allowed(host.encode()), host


def test_a_star_serves_any_host() -> None:
    assert Hosts(make_settings(ALLOWED_HOSTS="*")).host_allowed(b"anything.example:1")


@pytest.mark.parametrize(
    ("origin", "ok"),
    [
        (b"http://localhost:3000", True),
        (b"https://127.0.0.1", True),
        (b"http://[::1]:8080", True),
        (b"http://api.example:9000", True),  # an allowed host, any port
        (b"https://shop.example", True),  # listed in ALLOWED_ORIGINS
        (b"https://shop.example/", True),
        (b"https://evil.example", False),
        (b"null", False),
        (b"file://", False),
        (b"http://localhost.evil.example", False),
        (b"http://[::1", False),
        (b"ftp://localhost", False),
    ],
)
def test_origin_policy(origin: bytes, ok: bool) -> None:
    """ALLOWED_ORIGINS, or http(s) on an allowed host; nothing else."""
    hosts = Hosts(
        make_settings(
            ALLOWED_HOSTS="localhost,127.0.0.1,::1,api.example",
            ALLOWED_ORIGINS="https://shop.example",
        )
    )
    assert hosts.origin_allowed(origin) is ok


def test_dns_rebinding_cannot_pass_the_origin_check() -> None:
    """A page on evil.example resolved to 127.0.0.1 sends Host and Origin evil.example:
    the rule reads the allowed hosts, never the request's Host, so the origin is foreign."""
    hosts = Hosts(make_settings(ALLOWED_HOSTS=""))
    assert not hosts.host_allowed(b"evil.example:8000")
    assert not hosts.origin_allowed(b"http://evil.example:8000")
