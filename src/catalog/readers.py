"""Reads that many concurrent requests share (`src.db.batch`): products by id, batched; the
brand list, one query for all who ask in the same loop iteration.

Injected into routes as a DI singleton; bound to the database when the catalog starts.
"""

from functools import partial

from src.catalog import queries
from src.catalog.positions import Read
from src.catalog.skus import queries as sku_queries
from src.db.batch import Batcher
from src.db.pool import Database


class CatalogReader:
    """GET /products/{id}, GET /brands and SKU pages: the lookups of one loop iteration
    share a query."""

    def __init__(self) -> None:
        self._products: Batcher[int, Read] | None = None
        self._brands: Batcher[None, Read] | None = None
        self._sku_pages: Batcher[sku_queries.PageKey, Read] | None = None

    def start(self, db: Database) -> None:
        self._products = Batcher(partial(queries.products_json, db))
        self._brands = Batcher(partial(_brands, db))
        self._sku_pages = Batcher(partial(sku_queries.sku_pages_json, db))

    async def sku_page_json(self, product_id: int, *, after: int, limit: int) -> Read | None:
        """A page of a product's SKUs as JSON, or None if the product does not exist."""
        assert self._sku_pages is not None, "the catalog component starts it with the database"
        return await self._sku_pages.load((product_id, after, limit))

    async def product_json(self, product_id: int) -> Read | None:
        """One product as JSON, or None."""
        assert self._products is not None, "the catalog component starts it with the database"
        return await self._products.load(product_id)

    async def brands_json(self) -> Read:
        """Every brand by id, as a JSON array."""
        assert self._brands is not None, "the catalog component starts it with the database"
        read = await self._brands.load(None)
        assert read is not None
        return read


async def _brands(db: Database, keys: list[None]) -> dict[None, Read]:
    return {None: await queries.brands_json(db)}
