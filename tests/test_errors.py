"""The one mapping from exceptions to problems: status, type, headers, and what is shown."""

import logging

import pytest
from lihil import HTTPException
from lihil.problems import InvalidRequestErrors, MissingRequestParam

from src.errors import (
    DatabaseUnavailable,
    FieldError,
    InvalidRequest,
    NotFound,
    UnknownBrand,
    to_problem,
)


@pytest.mark.parametrize(
    ("exc", "status", "problem_type", "headers"),
    [
        (NotFound("product 9 does not exist"), 404, "not-found", None),
        (UnknownBrand(7), 409, "unknown-brand", None),
        (InvalidRequest([FieldError("query", "limit", "too big")]), 422, "invalid-request", None),
        (DatabaseUnavailable("down"), 503, "database-unavailable", {"Retry-After": "1"}),
        (HTTPException("teapot", problem_status=418), 418, "http-exception", None),
        (RuntimeError("secret internals"), 500, "internal-error", None),
        # Not outages: only the database boundary may decide that (src.db.pool).
        (ConnectionRefusedError("refused"), 500, "internal-error", None),
        (FileNotFoundError("/run/postgresql/.s.PGSQL.5432"), 500, "internal-error", None),
    ],
)
def test_each_error_maps_to_its_problem(
    exc: Exception, status: int, problem_type: str, headers: dict[str, str] | None
) -> None:
    """Status, type and extra headers come from the exception's class."""
    problem, extra = to_problem(exc, "/somewhere")
    assert (problem.status, problem.type, extra) == (status, problem_type, headers)
    assert problem.instance == "/somewhere" and problem.title


def test_unknown_brand_names_the_field() -> None:
    """409 says which field named the missing brand."""
    problem, _ = to_problem(UnknownBrand(7), "/products")
    assert problem.errors == [FieldError("body", "brand_id", "brand 7 does not exist")]


def test_lihil_validation_errors_become_one_entry_per_field() -> None:
    """lihil's InvalidRequestErrors become invalid-request with location, field, message."""
    exc = InvalidRequestErrors(
        detail=[
            MissingRequestParam("query", "limit"),
            MissingRequestParam("body", "product_name"),
        ]
    )
    problem, _ = to_problem(exc, "/products")
    assert (problem.status, problem.type) == (422, "invalid-request")
    assert [(e.location, e.field) for e in problem.errors] == [
        ("query", "limit"),
        ("body", "product_name"),
    ]
    assert "limit" in problem.detail and "product_name" in problem.detail


def test_a_bug_is_logged_with_its_traceback_and_hidden_from_the_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """500: the client reads a plain sentence; the log has the exception and traceback."""
    try:
        raise RuntimeError("secret internals")
    except RuntimeError as exc:
        with caplog.at_level(logging.ERROR, logger="catalog.errors"):
            problem, _ = to_problem(exc, "/x")
    assert "secret" not in problem.detail
    (record,) = caplog.records
    assert record.exc_info is not None and "secret internals" in caplog.text
