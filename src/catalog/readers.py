"""Reads that many concurrent requests share (`src.db.batch`): products by id, batched; the
brand list, one query for all who ask in the same loop iteration.

Injected into routes as a DI singleton; bound to the database when the catalog starts.
"""

from functools import partial

from src.catalog import queries
from src.db.batch import Batcher
from src.db.pool import Database


class CatalogReader:
    """GET /products/{id} and GET /brands: the lookups of one loop iteration share a query."""

    def __init__(self) -> None:
        self._products: Batcher[int, str] | None = None
        self._brands: Batcher[None, str] | None = None

    def start(self, db: Database) -> None:
        self._products = Batcher(partial(queries.products_json, db))
        self._brands = Batcher(partial(_brands, db))

    async def product_json(self, product_id: int) -> str | None:
        """One product as JSON, or None."""
        assert self._products is not None, "the catalog component starts it with the database"
        return await self._products.load(product_id)

    async def brands_json(self) -> str:
        """Every brand by id, as a JSON array."""
        assert self._brands is not None, "the catalog component starts it with the database"
        text = await self._brands.load(None)
        assert text is not None
        return text


async def _brands(db: Database, keys: list[None]) -> dict[None, str]:
    return {None: await queries.brands_json(db)}
