"""What each catalog answer depends on, and what each change touches: the tags by which the
response cache (src/edge/cache.py) drops an answer when the feed reports a change.

Coarse where exactness would cost more than it saves: a page of products without a brand
filter depends on every product (and, when it filters by price or stock, on every SKU); a
page of one brand's products on that brand's products and their SKUs. A product's delete
removes its SKUs without a change of their own, so it drops every cached SKU (deletes are
rare; a stock change drops one SKU and the pages that could show it).
"""

from collections.abc import Iterable

BRANDS = "brands"  # the list of every brand
PRODUCTS = "products"  # pages of products with no brand filter
SKUS = "skus"  # pages filtered by price or stock, with no brand filter
ANY_SKU = "sku:*"  # every single-SKU answer (a product's delete removes its SKUs unrecorded)
SKU_FILTERS = ("min_price", "max_price", "in_stock")


def brand(brand_id: object) -> str:
    return f"brand:{brand_id}"


def product(product_id: object) -> str:
    return f"product:{product_id}"


def brand_products(brand_id: object) -> str:
    return f"brand-products:{brand_id}"


def product_skus(product_id: object) -> str:
    return f"product-skus:{product_id}"


def sku(sku_id: object) -> str:
    return f"sku:{sku_id}"


# -- what an answer depends on (declared by each cacheable GET: `@operation(cache=...)`) --


def of_brands(path: dict[str, str], query: dict[str, str]) -> Iterable[str]:
    return (BRANDS,)


def of_brand(path: dict[str, str], query: dict[str, str]) -> Iterable[str]:
    return (brand(path["brand_id"]),)


def of_product(path: dict[str, str], query: dict[str, str]) -> Iterable[str]:
    return (product(path["product_id"]),)


def of_product_page(path: dict[str, str], query: dict[str, str]) -> Iterable[str]:
    if "brand_id" in query:
        return (brand_products(query["brand_id"]),)
    if any(name in query for name in SKU_FILTERS):
        return (PRODUCTS, SKUS)
    return (PRODUCTS,)


def of_sku_page(path: dict[str, str], query: dict[str, str]) -> Iterable[str]:
    return (product_skus(path["product_id"]),)


def of_sku(path: dict[str, str], query: dict[str, str]) -> Iterable[str]:
    return (sku(path["sku_id"]), ANY_SKU)


# -- what a change touches (the feed applies each change to the cache) --------------------


def touched(
    kind: str, key: int, product_id: int | None, brand_ids: Iterable[int]
) -> frozenset[str]:
    """The tags a change names: `kind` is its type ("product.updated"), `key` the id of
    the row it changed, `product_id` and `brand_ids` what the feed row says it touches."""
    entity, _, action = kind.partition(".")
    if entity == "brand":  # product pages show no brand name: they stay
        return frozenset((BRANDS, brand(key)))
    brands = [brand_products(b) for b in brand_ids]
    if entity == "product":
        tags = {product(key), product_skus(key), PRODUCTS, *brands}
        if action == "deleted":
            tags.add(ANY_SKU)
        return frozenset(tags)
    # a SKU: its own answer, its product's SKU pages, and the pages filtering by SKUs
    return frozenset((sku(key), product_skus(product_id), SKUS, *brands))
