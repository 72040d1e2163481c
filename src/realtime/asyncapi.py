"""The WebSocket contract as an AsyncAPI 3 document, built from the protocol's own Structs."""

from typing import Any

import msgspec

from src.realtime.protocol import MAX_CHANGE_ID, MAX_ROW_ID, Close, Count, Message, Welcome

REF = "#/components/schemas/{name}"
CLOSE_MEANINGS: dict[int, str] = {
    Close.NORMAL: "normal close",
    Close.GOING_AWAY: "server shutting down",
    1002: "protocol error (sent by the WebSocket layer, uvicorn)",
    Close.UNSUPPORTED: "a binary frame where only text is accepted",
    1007: "a text frame that is not valid UTF-8 (sent by the WebSocket layer, uvicorn)",
    Close.POLICY: "too slow to read (the send queue overflowed) or sending faster than "
    "WS_MAX_MESSAGES_PER_S; the reason says which",
    Close.TOO_BIG: "message larger than WS_MAX_MESSAGE_BYTES",
    Close.BAD_PARAMETER: "bad path or query parameter (the reason says which and why)",
    Close.FORBIDDEN: "Origin not allowed",
    Close.GONE: "/ws/catalog: `after` is older than the retained window; reload, then "
    "reconnect without it",
    Close.TRY_AGAIN_LATER: "try again later: too many connections from this client address "
    "(WS_MAX_CONNECTIONS_PER_ADDRESS), a session room joined while the broker (Redis) is "
    "unreachable, or /ws/catalog?after= while the feed cannot reach the database",
    Close.FULL: "the session is full (reason: `session full (N/N)`)",
}


def _row(**properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


ROW_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID}
NAME = {"type": "string", "minLength": 1, "maxLength": 200}
LABEL = {"type": "string", "minLength": 1, "maxLength": 50}  # a size or colour name
COUNT = {"type": "integer", "minimum": 0, "maximum": MAX_ROW_ID}
# Each type's `data`: the row as the HTTP API shows it after the change (GET /brands/{id},
# /products/{id}, /skus/{id}); for a delete, its key (a SKU's with its product).
CHANGE_DATA: dict[str, dict[str, Any]] = {
    "brand.created": _row(brand_id=ROW_ID, brand_name=NAME),
    "brand.updated": _row(brand_id=ROW_ID, brand_name=NAME),
    "brand.deleted": _row(brand_id=ROW_ID),
    "product.created": _row(product_id=ROW_ID, product_name=NAME, brand_id=ROW_ID),
    "product.updated": _row(product_id=ROW_ID, product_name=NAME, brand_id=ROW_ID),
    "product.deleted": _row(product_id=ROW_ID),
    "sku.created": _row(
        sku_id=ROW_ID,
        product_id=ROW_ID,
        size=LABEL,
        color=LABEL,
        price={**COUNT, "description": "In minor units of `currency` (499 is 4.99)."},
        currency={"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217."},
        stock=COUNT,
    ),
    "sku.deleted": _row(sku_id=ROW_ID, product_id=ROW_ID),
}
CHANGE_DATA["sku.updated"] = CHANGE_DATA["sku.created"]


def _change(change_type: str) -> dict[str, Any]:
    return _row(
        id={"type": "integer", "minimum": 1, "description": "Increases in commit order."},
        type={"const": change_type},
        data=CHANGE_DATA[change_type],
    )


CHANGE_SCHEMA: dict[str, Any] = {
    "description": "One committed change: `type` names the row and what happened to it, "
    "`data` is the row as the HTTP API shows it after the change (for a delete, its key). "
    "A SKU removed with its product records no change of its own: the `product.deleted` "
    "stands for it.",
    "oneOf": [
        _change(f"{row}.{kind}")
        for row in ("brand", "product", "sku")
        for kind in ("created", "updated", "deleted")
    ],
}


# /ws/catalog's query parameters (integers in canonical decimal: no sign, no leading zero).
CATALOG_QUERY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "after": {
            "type": "string",
            "pattern": "^(0|[1-9][0-9]*)$",
            "description": f"A change id (0..{MAX_CHANGE_ID}), 0 for the oldest retained: "
            "replay the retained changes after it first.",
        },
        "brand_id": {
            "type": "string",
            "pattern": "^[1-9][0-9]*$",
            "description": f"A brand id (1..{MAX_ROW_ID}): only that brand's changes, its "
            "products' and their SKUs'. Not with product_id.",
        },
        "product_id": {
            "type": "string",
            "pattern": "^[1-9][0-9]*$",
            "description": f"A product id (1..{MAX_ROW_ID}): only that product's changes and "
            "its SKUs'. Not with brand_id.",
        },
    },
    "not": {"required": ["brand_id", "product_id"]},
}


def _text(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "contentType": "text/plain", "summary": description, "payload": schema}


def _json(struct: type[msgspec.Struct], summary: str) -> dict[str, Any]:
    name = struct.__name__
    return {
        "name": name,
        "contentType": "application/json",
        "summary": summary,
        "payload": {"$ref": REF.format(name=name)},
    }


def build_asyncapi(version: str, *, max_session_users: int, default_session_users: int) -> Any:
    _, schemas = msgspec.json.schema_components([Welcome, Count, Message], ref_template=REF)
    messages = {
        "UsersOnline": _text(
            "UsersOnline", "The number of /counter connections, e.g. `3`.", {"type": "string"}
        ),
        "Viewers": _text(
            "Viewers",
            "The number of clients viewing the product (connected to its viewers endpoint, "
            "on every process), e.g. `2`.",
            {"type": "string", "pattern": "^(0|[1-9][0-9]*)$"},
        ),
        "Welcome": _json(Welcome, "First frame to a new member: its id and the room's state."),
        "Count": _json(Count, "The room's member count, on every join and leave."),
        "Message": _json(Message, "A member's text, relayed to every member (sender included)."),
        "Text": _text("Text", "Any text frame (at most WS_MAX_MESSAGE_BYTES).", {"type": "string"}),
        "Ok": _text("Ok", "The echo's answer.", {"const": "OK!"}),
        "Change": {
            "name": "Change",
            "contentType": "application/json",
            "summary": "One committed change to a brand, product or SKU row.",
            "payload": {"$ref": REF.format(name="Change")},
        },
    }
    schemas["Change"] = CHANGE_SCHEMA

    def refs(*names: str) -> dict[str, Any]:
        return {n: {"$ref": f"#/components/messages/{n}"} for n in names}

    channels = {
        "counter": {
            "address": "/counter",
            "description": "Users online; whatever clients send is ignored. Updates are "
            "coalesced (at most one per COUNTER_WINDOW_MS) and end on the true count.",
            "messages": refs("UsersOnline"),
        },
        "productViewers": {
            "address": "/ws/products/{product_id}/viewers",
            "description": "Viewers of one product: the count of clients connected here for "
            "it, global across workers with BROKER=redis, pushed on connect and on change and "
            "coalesced like /counter. A bad product_id closes 4400. What clients send is "
            "ignored.",
            "parameters": {"product_id": {"description": "A product id, 1..2147483647."}},
            "messages": refs("Viewers"),
        },
        "sessionRoom": {
            "address": "/web_socket/{session_id}",
            "description": "A session room. Query parameter `max_users`: an integer "
            f"1..{max_session_users} (default {default_session_users}); the first member "
            "fixes the room's capacity. Joining a full room closes with 4429; while the "
            "broker is unavailable (BROKER=redis, Redis unreachable), joining closes with 1013.",
            "parameters": {"session_id": {"description": "1-64 characters of [A-Za-z0-9_-]."}},
            "messages": refs("Welcome", "Count", "Message", "Text"),
        },
        "echo": {"address": "/ws/echo", "messages": refs("Text", "Ok")},
        "catalog": {
            "address": "/ws/catalog",
            "description": "The live catalog: one frame per committed change to a brand, "
            "product or SKU row (price and stock included), whoever made it, with `id` "
            "increasing in commit order. Query parameters (each at most once; a bad or "
            "repeated one closes 4400 saying why):\n"
            "- `after`: a change id, 0 for the oldest retained: first every retained change "
            "with a larger id, in order, then the live feed, with no gap and no duplicate at "
            "the seam. An `after` older than the retained window closes 4410 (filtered or "
            "not); so do live clients of a server that found changes pruned before it read "
            "them (they missed them: reload).\n"
            f"- `brand_id` (1..{MAX_ROW_ID}): only the changes to that brand, its products "
            "and their SKUs. A product moved to another brand is delivered to both brands' "
            "listeners (its `data` shows the new brand); the changes after the move, only "
            "to the new brand's.\n"
            f"- `product_id` (1..{MAX_ROW_ID}): only the changes to that product and its "
            "SKUs.\n"
            "`brand_id` and `product_id` cannot be combined (4400). A filtered feed replays "
            "and goes live exactly as the whole feed does: the same ids, those that match. "
            "What clients send is ignored.",
            "bindings": {"ws": {"query": CATALOG_QUERY, "bindingVersion": "0.1.0"}},
            "messages": refs("Change"),
        },
        "broadcast": {
            "address": "/ws/broadcast",
            "description": "Every text frame goes to every client, sender included, in order.",
            "messages": refs("Text"),
        },
    }

    def operation(action: str, channel: str, *names: str) -> dict[str, Any]:
        return {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{n}"} for n in names],
        }

    close_codes = "\n".join(f"- {int(c)}: {m}" for c, m in CLOSE_MEANINGS.items())
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Catalog WebSockets",
            "version": version,
            "description": "Close codes used by every endpoint:\n" + close_codes,
        },
        "channels": channels,
        "operations": {
            "receiveUsersOnline": operation("receive", "counter", "UsersOnline"),
            "receiveViewers": operation("receive", "productViewers", "Viewers"),
            "receiveRoomFrames": operation("receive", "sessionRoom", "Welcome", "Count", "Message"),
            "sendRoomText": operation("send", "sessionRoom", "Text"),
            "sendEcho": operation("send", "echo", "Text"),
            "receiveEcho": operation("receive", "echo", "Ok"),
            "receiveCatalogChanges": operation("receive", "catalog", "Change"),
            "sendBroadcast": operation("send", "broadcast", "Text"),
            "receiveBroadcast": operation("receive", "broadcast", "Text"),
        },
        "components": {"messages": messages, "schemas": schemas},
    }
