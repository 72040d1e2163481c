"""Each WebSocket endpoint's protocol through lihil's TestClient (in-process)."""

import pytest
from lihil.vendors import TestClient, WebSocketDisconnect

from src.app import create_app
from src.db.embedded import free_port
from tests.helpers import make_settings


def test_echo_answers_ok(client: TestClient) -> None:
    """/ws/echo answers OK! to each text frame."""
    with client.websocket_connect("/ws/echo") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "OK!"


def test_counter_follows_connections(client: TestClient) -> None:
    """/counter pushes the count on connect and on every change."""
    with client.websocket_connect("/counter") as a:
        assert a.receive_text() == "1"
        with client.websocket_connect("/counter") as b:
            assert b.receive_text() == "2"
            assert a.receive_text() == "2"
        assert a.receive_text() == "1"


def test_room_welcome_count_message_and_full(client: TestClient) -> None:
    """Welcome, count, relayed message; a second member of a room of one gets 4429."""
    with client.websocket_connect("/web_socket/s1?max_users=1") as a:
        welcome = a.receive_json()
        assert welcome["type"] == "welcome" and welcome["users"] == 1
        assert a.receive_json() == {"type": "count", "session_id": "s1", "users": 1, "max_users": 1}
        with client.websocket_connect("/web_socket/s1") as b:
            with pytest.raises(WebSocketDisconnect) as closed:
                b.receive_json()
            assert (closed.value.code, closed.value.reason) == (4429, "session full (1/1)")
        a.send_text("yo")
        assert a.receive_json() == {
            "type": "message",
            "session_id": "s1",
            "member_id": welcome["member_id"],
            "text": "yo",
        }


def test_room_bad_parameter_closes_4400(client: TestClient) -> None:
    """A non-integer max_users is 4400 with a reason, not lihil's HTTP 500."""
    with client.websocket_connect("/web_socket/s1?max_users=x") as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == 4400 and "max_users" in closed.value.reason


def test_broadcast_and_binary_close(client: TestClient) -> None:
    """Broadcast returns the sender's copy; a binary frame closes 1003."""
    with client.websocket_connect("/ws/broadcast") as ws:
        ws.send_text("m1")
        assert ws.receive_text() == "m1"
        ws.send_bytes(b"x")
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == 1003


def test_foreign_origin_closes_4403(client: TestClient) -> None:
    """The Origin guard closes a cross-site handshake with 4403."""
    with client.websocket_connect("/counter", headers={"origin": "https://evil.example"}) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == 4403


def test_plain_http_to_a_websocket_path_is_426(client: TestClient) -> None:
    """GET /ws/echo without an upgrade answers 426 Upgrade Required, as a problem."""
    response = client.get("/ws/echo")
    assert response.status_code == 426
    assert response.headers["upgrade"] == "websocket"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "upgrade-required"


def test_redis_unreachable_keeps_local_service_and_refuses_rooms_1013(
    database_url: str,
) -> None:
    """BROKER=redis with Redis down: the app starts, /ready answers 503 naming the broker,
    /counter and /ws/broadcast serve this process's clients, a room join closes 1013."""
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    settings = make_settings(DATABASE_URL=database_url, BROKER="redis", REDIS_URL=nowhere)
    with TestClient(create_app(settings)) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.headers["retry-after"] == "1"
        assert ready.json()["type"] == "broker-unavailable" and "broker" in ready.json()["detail"]
        assert "\ncatalog_broker_up 0.0\n" in client.get("/metrics").text
        assert client.get("/brands/1").status_code == 200
        with client.websocket_connect("/counter") as counter:
            assert counter.receive_text() == "1"
            with client.websocket_connect("/ws/broadcast") as ws:
                ws.send_text("local")
                assert ws.receive_text() == "local"
            with client.websocket_connect("/web_socket/s1?max_users=2") as ws:
                with pytest.raises(WebSocketDisconnect) as closed:
                    ws.receive_json()
                code, reason = closed.value.code, closed.value.reason
                assert (code, reason) == (1013, "the broker is unavailable; try again later")
