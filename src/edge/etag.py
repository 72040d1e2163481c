"""Entity tags for conditional GETs (the edge tags every GET's 200 and answers 304).

A 200 answer to GET carries a strong `ETag`: a hash of the very bytes being sent, computed
for each response. Nothing is cached on the server, so there is nothing to invalidate: a
tag changes exactly when the body does, whoever changed the rows behind it (this API,
another worker, plain SQL), and a 304 can never stand for a changed row. The cost is the
hash, about a microsecond per kilobyte; the saving is the body on the wire. Responses
without a Content-Length (streamed) pass through untouched.

HEAD is answered wherever GET is (LIHIL TRAP: lihil routes HEAD nowhere, so it answered
405): the edge runs it as a GET and sends the head only.
"""

import hashlib

MAX_TAGGED_BYTES = 1024 * 1024  # larger bodies (none today) are sent untagged


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def none_match(header: str, etag: str) -> bool:
    """If-None-Match holds `etag` (weak comparison, as RFC 9110 asks for it) or `*`."""
    candidates = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in candidates or etag in candidates


def if_match_holds(header: str, etag: str) -> bool:
    """If-Match holds `etag` (strong comparison, as RFC 9110 asks for it: a weak tag never
    matches) or `*`."""
    candidates = [tag.strip() for tag in header.split(",")]
    return "*" in candidates or etag in candidates
