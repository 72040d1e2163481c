"""scripts/ws_consumer.py and scripts/ws_producer.py against a real uvicorn."""

import re
import signal
import subprocess
import sys

from src.config import PROJECT_ROOT
from src.db.embedded import free_port
from tests.helpers import LiveServer, running, start_live_server

TIMESTAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d "


def produce(url: str, message: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run the producer to the end."""
    args = [sys.executable, "-m", "scripts.ws_producer", url, message, *extra]
    return subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30)


def test_consumer_prints_messages_from_the_producer(shared_server: LiveServer) -> None:
    """Two produced broadcasts show up as two timestamped lines, then the consumer exits 0."""
    url = f"{shared_server.ws}/ws/broadcast"
    with running(["-m", "scripts.ws_consumer", url, "--max-messages", "2"], {}) as consumer:
        consumer.wait_for(f"connected: {url}", timeout=15)

        first = produce(url, "first")
        assert first.returncode == 0, first.stderr
        assert first.stdout == "sent and confirmed: 'first'\n"
        second = produce(url, "second\nline")
        assert second.returncode == 0, second.stderr

        first_line = consumer.wait_for("message: ", timeout=15)
        assert re.match(TIMESTAMP + "message: first$", first_line), first_line
        second_line = consumer.wait_for("message: ", timeout=15)
        assert second_line.endswith("message: second\\nline"), second_line
        assert consumer.proc.wait(timeout=15) == 0


def test_producer_without_a_server_fails_clearly() -> None:
    """Nothing listening: exit code 1 and a 'cannot connect' message."""
    url = f"ws://127.0.0.1:{free_port()}/ws/broadcast"
    result = produce(url, "hello", "--timeout", "5")
    assert result.returncode == 1
    assert f"error: cannot connect to {url}" in result.stderr
    assert result.stdout == ""


def test_producer_reports_the_close_code_and_reason(shared_server: LiveServer) -> None:
    """A server-side close (here 4400 for a bad max_users) is printed with code and reason."""
    url = f"{shared_server.ws}/web_socket/room?max_users=0"
    result = produce(url, "hello", "--timeout", "10")
    assert result.returncode == 1
    assert "error: connection closed before the copy came back: code 4400" in result.stderr
    assert "max_users must be an integer" in result.stderr


def test_producer_times_out_when_no_copy_comes_back(shared_server: LiveServer) -> None:
    """/ws/echo answers OK!, never the message itself: the producer gives up after --timeout."""
    result = produce(f"{shared_server.ws}/ws/echo", "hello", "--timeout", "1")
    assert result.returncode == 1
    assert "error: no copy of the message came back within 1 s" in result.stderr


def test_consumer_retries_with_backoff_and_stops_on_sigint() -> None:
    """Refused connections are logged and retried after 0.5 s, then 1.0 s; SIGINT exits 0."""
    url = f"ws://127.0.0.1:{free_port()}/counter"
    with running(["-m", "scripts.ws_consumer", url], {}) as consumer:
        consumer.wait_for(f"cannot connect to {url}", timeout=15)
        consumer.wait_for("retrying in 0.5 s", timeout=5)
        consumer.wait_for("cannot connect", timeout=5)
        consumer.wait_for("retrying in 1.0 s", timeout=5)
        assert consumer.stop(signal.SIGINT) == 0
        consumer.wait_for("stopped", timeout=5)


def test_consumer_reconnects_after_the_server_restarts(
    live_server: LiveServer, database_url: str
) -> None:
    """Server stops (1001 logged), consumer retries, a new server on the port is picked up."""
    url = f"{live_server.ws}/counter"
    with running(["-m", "scripts.ws_consumer", url], {}) as consumer:
        consumer.wait_for(f"connected: {url}", timeout=15)
        consumer.wait_for("message: 1", timeout=15)

        live_server.process.stop(signal.SIGTERM)
        line = consumer.wait_for("disconnected: ", timeout=15)
        assert re.search(r"disconnected: 1001 server shutting down$", line), line
        consumer.wait_for("retrying in 0.5 s", timeout=5)
        consumer.wait_for("cannot connect", timeout=5)

        server, _ = start_live_server(database_url, port=live_server.port)
        try:
            consumer.wait_for(f"connected: {url}", timeout=20)
            consumer.wait_for("message: 1", timeout=15)
            assert consumer.stop(signal.SIGTERM) == 0
            consumer.wait_for("stopped", timeout=5)
        finally:
            server.stop(signal.SIGTERM)


def test_consumer_gives_up_on_a_path_the_server_does_not_serve(shared_server: LiveServer) -> None:
    """A 404 at the handshake is not transient: one clear line and exit code 1, no retries."""
    url = f"{shared_server.ws}/no/such/path"
    args = [sys.executable, "-m", "scripts.ws_consumer", url]
    result = subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1, result
    output = result.stdout + result.stderr
    assert "giving up: the server answered HTTP 404" in output
    assert "retrying" not in output
