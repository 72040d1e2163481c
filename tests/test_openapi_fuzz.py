"""Schemathesis against a real uvicorn: every operation, generated inputs, no 5xx, and every
response conforms to the published schema (status code, content type, headers, body)."""

import json
import re
import subprocess
import sys
from pathlib import Path

from src.config import PROJECT_ROOT
from tests.helpers import AUTH, LiveServer


def test_schemathesis_finds_no_failure(live_server: LiveServer, tmp_path: Path) -> None:
    """At least 500 generated cases across all operations pass every check."""
    schemathesis = Path(sys.executable).parent / "schemathesis"
    # A schema-valid request may rightly be refused: 412 is the answer to an If-Match that
    # names another version than the resource's (a generated tag always does); 422 to a
    # cacheable GET whose Catalog-Position is beyond every change recorded (a generated
    # one nearly always is), or to a GET /products whose min_price is above its max_price
    # (no schema can say that a value must exist, nor that one parameter bounds another).
    # Besides those, the check keeps its default list.
    accepted = '"2xx", "3xx", "401", "403", "404", "409", "412", "429", "5xx"'
    positioned = ("listBrands", "getBrand", "listProducts", "getProduct", "listSkus", "getSku")
    (tmp_path / "schemathesis.toml").write_text(
        f"[checks.positive_data_acceptance]\nexpected-statuses = [{accepted}]\n"
        + "".join(
            f'[[operations]]\ninclude-operation-id = "{operation}"\n'
            f'checks.positive_data_acceptance.expected-statuses = [{accepted}, "422"]\n'
            for operation in positioned
        )
    )
    result = subprocess.run(
        [
            schemathesis,
            "run",
            f"{live_server.http}/openapi",
            "--checks",
            "all",
            "--max-examples",
            "40",
            "--seed",
            "20261125",  # fixed: a failure reproduces with the same command
            "--generation-database",
            "none",
            "--no-color",
            "--request-timeout",
            "10",
            "--header",
            f"Authorization: {AUTH['Authorization']}",
        ],
        cwd=tmp_path,  # schemathesis keeps state in the working directory
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    document = json.loads((PROJECT_ROOT / "docs" / "openapi.json").read_text())
    operations = sum(len(item) for item in document["paths"].values())
    assert f"Tested: {operations}" in output, output[-2000:]  # every operation, none skipped
    generated = re.search(r"(\d+) generated, (\d+) passed", output)
    assert generated, output[-2000:]
    assert int(generated.group(1)) >= 500 and generated.group(1) == generated.group(2)
