"""Fixes for lihil 0.2.41 bugs that cannot be worked around from the outside.

Imported once by `src.app`; each patch names the trap it works around.
"""

from typing import Any, Literal, get_args, get_origin

from lihil.signature import returns


def _is_empty_return(t: Any) -> bool:
    return t is None or (get_origin(t) is Literal and get_args(t) == (None,))


# LIHIL TRAP (`Empty` checked by identity): lihil tests a 204 route's return type with
# `t is Literal[None]`. typing caches Literal[...] objects in a bounded cache; once an import
# heavy in Literals (playwright, say) evicts that entry, a fresh `Literal[None]` is another
# object and every `-> Annotated[Empty, status.NO_CONTENT]` route fails to set up.
returns.is_empty_return = _is_empty_return
