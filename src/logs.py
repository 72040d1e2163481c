"""Log lines and request ids (API.md "Metrics and logs").

Every HTTP response carries `X-Request-ID` (set by the edge): the client's own when it sent
a sane one (1 to 128 of `A-Za-z0-9._-`), else a new one. The id lives in a context
variable for the length of the request, and a logging filter adds it to every line logged
meanwhile: ours, lihil's, and uvicorn's access line (uvicorn logs it from the request's
own task). With LOG_FORMAT=json each line is one JSON object.
"""

import itertools
import json
import logging
import re
import secrets
import time
from contextvars import ContextVar
from typing import Any

from uvicorn.logging import DefaultFormatter

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
# A new id: this process's random half and a sequence (32 hex digits, unique across
# processes and hosts; a uuid4 per request cost a system call each).
_PROCESS_ID = secrets.token_hex(8)
_sequence = itertools.count(1)


def new_request_id() -> str:
    return f"{_PROCESS_ID}{next(_sequence):016x}"


SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

# Sent with every HTTP response: no MIME sniffing, no framing by other sites, no referrer.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class WithRequestId(logging.Formatter):
    """Any formatter's line, with `[request <id>]` on lines logged during a request."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        line = self.inner.format(record)
        rid = getattr(record, "request_id", None)
        return f"{line} [request {rid}]" if rid else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if rid := getattr(record, "request_id", None):
            entry["request_id"] = rid
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def show_logs(level: str, log_format: str = "text") -> None:
    """For the served process: the service's lines ("catalog.*") go where uvicorn's go, in
    its format (or JSON) and at LOG_LEVEL, and every line, uvicorn's too, carries the
    request id. (Without this only warnings reached stderr, bare.)"""
    logger = logging.getLogger("catalog")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(DefaultFormatter("%(levelprefix)s %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level.upper())
    for name in ("catalog", "uvicorn", "uvicorn.error", "uvicorn.access"):
        for each in logging.getLogger(name).handlers:
            if any(isinstance(f, RequestIdFilter) for f in each.filters):
                continue  # done already
            each.addFilter(RequestIdFilter())
            if log_format == "json":
                each.setFormatter(JsonFormatter())
            else:
                each.setFormatter(WithRequestId(each.formatter or logging.Formatter()))
