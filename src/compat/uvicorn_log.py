"""uvicorn's error log: two lines it logs that are not the server's errors (UVICORN TRAPs).

`quiet_uvicorn_log()` installs one filter on uvicorn's error logger (idempotent); the app
factory calls it. Nothing happens at import.
"""

import logging
from contextvars import ContextVar

PACKAGE = "uvicorn"
WRITTEN_FOR = "0.54.0"

# UVICORN TRAP: after a handshake denial (an HTTP response instead of accept) uvicorn 0.54
# still logs "ERROR: ASGI callable returned without completing handshake." for every
# refused client. uvicorn logs it from the task that ran the app, so a context variable the
# edge sets there tells this filter that the denial was ours and on purpose; the same line
# for a handler that forgot to accept still shows.
_denied: ContextVar[bool] = ContextVar("websocket_denied", default=False)


def denied_on_purpose() -> None:
    """The edge refuses this task's handshake on purpose: uvicorn's complaint is not logged."""
    _denied.set(True)


class _QuietFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() == "Invalid UTF-8 sequence received from client.":
            # UVICORN TRAP (a client's bad bytes logged as a server error): a fragmented text
            # message that is not UTF-8 is closed 1007, as it should be, but logged at ERROR
            # with a traceback. It is the client's fault: one warning line, no traceback.
            record.levelno, record.levelname, record.exc_info = logging.WARNING, "WARNING", None
            return True
        return not (_denied.get() and record.getMessage().startswith("ASGI callable returned"))


def quiet_uvicorn_log() -> None:
    """Installs the filter above on uvicorn's error logger (idempotent)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietFilter) for f in logger.filters):
        logger.addFilter(_QuietFilter())
