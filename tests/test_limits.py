"""The token buckets and client addresses behind API.md's limits (pure: time passed in)."""

from ipaddress import ip_network

from src.limits import Bucket, Buckets, client_address


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = Bucket(rate=100, burst=200, now=0.0)
    assert [bucket.take(0.0) for _ in range(200)] == [0.0] * 200
    assert bucket.take(0.0) > 0  # the burst is spent
    assert bucket.take(0.01) == 0.0  # 10 ms later: one more token
    assert bucket.take(0.01) > 0


def test_buckets_answer_whole_seconds_and_forget_refilled_keys() -> None:
    buckets = Buckets(rate=1 / 60, burst=1, max_keys=2)
    assert buckets.take("a", 0.0) == 0
    assert buckets.take("a", 1.0) == 59  # one a minute: 59 s to wait
    buckets.take("b", 1.0)
    buckets.take("c", 120.0)  # a and b have refilled by now: forgotten
    assert len(buckets) == 1


def test_the_client_address_is_the_peer_unless_a_trusted_proxy_forwards() -> None:
    proxies = [ip_network("10.0.0.0/8")]
    assert client_address("192.0.2.9", ["198.51.100.1"], proxies) == "192.0.2.9"
    assert client_address("10.1.1.1", ["198.51.100.1"], proxies) == "198.51.100.1"
    # The client wrote the leftmost entry itself; the proxies appended the rest.
    assert (
        client_address("10.1.1.1", ["6.6.6.6, 198.51.100.1, 10.2.2.2"], proxies) == "198.51.100.1"
    )
    assert client_address("10.1.1.1", [], proxies) == "10.1.1.1"
    assert client_address("10.1.1.1", ["garbage"], proxies) == "garbage"
    assert client_address(None, [], []) == "unknown"
