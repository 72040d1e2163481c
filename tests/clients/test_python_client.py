"""The typed client in clients/python: regenerated identically, and working end to end."""

import filecmp
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from catalog_client import AuthenticatedClient
from catalog_client.api.brands import get_brand, list_brands
from catalog_client.api.products import (
    create_product,
    create_product_tutorial,
    delete_product,
    get_product,
    list_products,
    replace_product,
)
from catalog_client.api.service import get_health, get_ready, get_time
from catalog_client.models import (
    Brand,
    Health,
    Problem,
    Product,
    ProductIn,
    ProductPage,
)

from src.config import PROJECT_ROOT
from src.db.embedded import EmbeddedPostgres
from tests.helpers import TOKEN, LiveServer, start_live_server

CLIENT = PROJECT_ROOT / "clients" / "python" / "catalog_client"


def differences(a: Path, b: Path) -> list[str]:
    """Files that differ, or exist on one side only, between two trees."""
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__", ".ruff_cache"])
    found = [*cmp.left_only, *cmp.right_only, *cmp.diff_files]
    for sub in cmp.common_dirs:
        found += [f"{sub}/{name}" for name in differences(a / sub, b / sub)]
    return found


def test_committed_client_matches_a_fresh_generation(tmp_path: Path) -> None:
    """`make client` output is committed: regenerating from docs/openapi.json changes nothing."""
    bin_dir = Path(sys.executable).parent
    out = tmp_path / "catalog_client"
    subprocess.run(
        [
            bin_dir / "openapi-python-client",
            "generate",
            "--path",
            PROJECT_ROOT / "docs" / "openapi.json",
            "--config",
            PROJECT_ROOT / "clients" / "openapi-python-client.yaml",
            "--meta",
            "none",
            "--output-path",
            out,
        ],
        check=True,
        cwd=tmp_path,
        capture_output=True,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    assert differences(CLIENT, out) == [], "clients/python is stale: run make client"


class Model(Protocol):
    """A generated model: the fields the schema names, and whatever else arrived."""

    additional_properties: dict[str, Any]


def plain(model: Model) -> None:
    """Every field we send is a typed attribute: nothing lands in additional_properties."""
    assert model.additional_properties == {}, model


def client_of(server: LiveServer) -> AuthenticatedClient:
    return AuthenticatedClient(base_url=server.http, token=TOKEN, raise_on_unexpected_status=True)


@pytest.fixture
def api(shared_server: LiveServer) -> Iterator[AuthenticatedClient]:
    """A client of the session's shared server."""
    with client_of(shared_server) as client:
        yield client


@pytest.fixture
def own_api(live_server: LiveServer) -> Iterator[AuthenticatedClient]:
    """A client of a server of the test's own: for a test that reads the catalog's end,
    which products other tests create on the shared server would move."""
    with client_of(live_server) as client:
        yield client


def test_client_reads_service_and_brands(api: AuthenticatedClient) -> None:
    """getTime, getHealth, getReady, listBrands, getBrand (200, 404, 422) as typed models."""
    now = get_time.sync(client=api)
    assert now is not None and 1 <= now.month <= 12
    plain(now)
    health = get_health.sync(client=api)
    assert isinstance(health, Health) and health.status == "ok"
    ready = get_ready.sync(client=api)
    assert isinstance(ready, Health) and ready.status == "ready"
    brands = list_brands.sync(client=api)
    assert isinstance(brands, list) and len(brands) == 100
    for brand in brands:
        assert isinstance(brand, Brand)
        plain(brand)
    assert get_brand.sync(3, client=api) == brands[2]
    missing = get_brand.sync_detailed(101, client=api)
    assert missing.status_code == 404 and isinstance(missing.parsed, Problem)
    assert missing.parsed.type_ == "not-found" and missing.parsed.instance == "/brands/101"
    plain(missing.parsed)
    bad = get_brand.sync_detailed(0, client=api)
    assert bad.status_code == 422 and isinstance(bad.parsed, Problem)
    assert isinstance(bad.parsed.errors, list)  # not UNSET: a 422 names the bad fields
    assert [(e.location, e.field) for e in bad.parsed.errors] == [("path", "brand_id")]
    plain(bad.parsed.errors[0])


def test_client_pages_products(own_api: AuthenticatedClient) -> None:
    """listProducts: typed pages, next_after, brand filter and bounds."""
    page = list_products.sync(client=own_api, limit=5, after=10)
    assert isinstance(page, ProductPage)
    assert [p.product_id for p in page.items] == [11, 12, 13, 14, 15] and page.next_after == 15
    plain(page)
    for product in page.items:
        plain(product)
    mine = list_products.sync(client=own_api, brand_id=3, limit=100)
    assert isinstance(mine, ProductPage) and all(p.brand_id == 3 for p in mine.items)
    last = list_products.sync(client=own_api, after=995)
    assert isinstance(last, ProductPage) and last.next_after is None
    too_big = list_products.sync_detailed(client=own_api, limit=101)
    assert too_big.status_code == 422 and isinstance(too_big.parsed, Problem)


def test_client_writes_products(api: AuthenticatedClient) -> None:
    """createProduct (and the tutorial path), getProduct, replaceProduct, deleteProduct
    (shared server: only of products it creates)."""
    created = create_product.sync_detailed(
        client=api, body=ProductIn(product_name="client made", brand_id=2)
    )
    assert created.status_code == 201 and isinstance(created.parsed, Product)
    assert created.headers["location"] == f"/products/{created.parsed.product_id}"
    plain(created.parsed)
    alias = create_product_tutorial.sync(client=api, body=ProductIn(product_name="x", brand_id=1))
    assert isinstance(alias, Product) and alias.product_id == created.parsed.product_id + 1

    pid = created.parsed.product_id
    assert get_product.sync(pid, client=api) == created.parsed
    renamed = replace_product.sync(pid, client=api, body=ProductIn(product_name="y", brand_id=4))
    assert isinstance(renamed, Product) and (renamed.product_name, renamed.brand_id) == ("y", 4)
    unknown = replace_product.sync_detailed(
        pid, client=api, body=ProductIn(product_name="y", brand_id=4242)
    )
    assert unknown.status_code == 409 and isinstance(unknown.parsed, Problem)
    assert unknown.parsed.type_ == "unknown-brand"

    assert delete_product.sync_detailed(pid, client=api).status_code == 204
    gone = get_product.sync_detailed(pid, client=api)
    assert gone.status_code == 404 and isinstance(gone.parsed, Problem)
    again = delete_product.sync_detailed(pid, client=api)
    assert again.status_code == 404 and isinstance(again.parsed, Problem)
    absent = replace_product.sync_detailed(
        pid, client=api, body=ProductIn(product_name="z", brand_id=1)
    )
    assert absent.status_code == 404


def test_client_reads_503_problems_while_the_database_is_down(pg_dir: Path) -> None:
    """With PostgreSQL stopped, operations answer typed 503 Problems, then recover."""
    server = EmbeddedPostgres(pg_dir / "data", fast=True)
    process, port = start_live_server(server.start(), DB_CONNECT_TIMEOUT="2")
    try:
        with AuthenticatedClient(base_url=f"http://127.0.0.1:{port}", token=TOKEN) as api:
            assert isinstance(get_brand.sync(1, client=api), Brand)
            server.stop()
            for response in (
                list_brands.sync_detailed(client=api),
                get_product.sync_detailed(1, client=api),
                list_products.sync_detailed(client=api),
                create_product.sync_detailed(
                    client=api, body=ProductIn(product_name="x", brand_id=1)
                ),
                get_ready.sync_detailed(client=api),
            ):
                assert response.status_code == 503
                assert isinstance(response.parsed, Problem)
                assert response.parsed.type_ == "database-unavailable"
                assert response.headers["retry-after"] == "1"
            server.start()
            assert isinstance(get_brand.sync(1, client=api), Brand)
    finally:
        process.stop(signal.SIGTERM)
        server.destroy()


def readme_snippet() -> str:
    """The README's example of the typed client, exactly as a reader copies it."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    start = readme.index("```python\nimport os\n\nfrom catalog_client import AuthenticatedClient")
    return readme[start + len("```python\n") : readme.index("```", start + 3)]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh virtualenv where `pip install clients/python` installed the
    client (from a copy: a build leaves files behind), as a user of the API would."""
    work = tmp_path_factory.mktemp("client")
    shutil.copytree(PROJECT_ROOT / "clients" / "python", work / "src")
    subprocess.run([sys.executable, "-m", "venv", work / "venv"], check=True, timeout=120)
    python = work / "venv" / "bin" / "python"
    install: list[str | Path] = [python, "-m", "pip", "install", "--quiet"]
    done = subprocess.run(
        [*install, "--disable-pip-version-check", work / "src"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return python


@pytest.mark.parametrize(("brand_id", "outcome"), [(1, "Product("), (999, "409 unknown-brand")])
def test_readme_client_example_runs(
    installed: Path, shared_server: LiveServer, brand_id: int, outcome: str
) -> None:
    """The README's snippet, run by a virtualenv that has only the installed client, creates
    and reads a product, and reports a problem readably."""
    code = readme_snippet().replace("http://127.0.0.1:8000", shared_server.http)
    code = code.replace("brand_id=1)", f"brand_id={brand_id})")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        [installed, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=installed.parent,  # not the checkout: nothing to import from there
        env={**env, "CATALOG_TOKEN": TOKEN},
    )
    assert outcome in run.stdout + run.stderr, run
    assert "Traceback" not in run.stderr, run.stderr


def test_client_reads_its_write_back_with_the_position_it_answered(
    api: AuthenticatedClient,
) -> None:
    """A write answers Catalog-Position; a read sending it back reflects the write (shared
    server: a product of its own)."""
    created = create_product.sync_detailed(
        client=api, body=ProductIn(product_name="positioned", brand_id=2)
    )
    assert isinstance(created.parsed, Product)
    pid = created.parsed.product_id
    renamed = replace_product.sync_detailed(
        pid, client=api, body=ProductIn(product_name="repositioned", brand_id=2)
    )
    position = int(renamed.headers["catalog-position"])
    assert position >= int(created.headers["catalog-position"]) > 0
    read = get_product.sync_detailed(pid, client=api, catalog_position=position)
    assert isinstance(read.parsed, Product) and read.parsed.product_name == "repositioned"
    assert int(read.headers["catalog-position"]) >= position
    # The client sends it: a position no write has reached yet is refused (the read above
    # would reflect the write on this worker even without the header).
    ahead = get_product.sync_detailed(pid, client=api, catalog_position=2**62)
    assert ahead.status_code == 422
    assert delete_product.sync_detailed(pid, client=api).status_code == 204
