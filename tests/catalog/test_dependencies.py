"""Every change drops every cached answer that could show it: the tags an answer depends on
meet the tags of each change that alters it."""

from src.catalog import dependencies as deps


def hits(answer_tags: object, change_tags: frozenset[str]) -> bool:
    return not change_tags.isdisjoint(answer_tags)  # type: ignore[arg-type]


def test_a_product_change_drops_its_answer_its_pages_and_its_old_brands_pages() -> None:
    moved = deps.touched("product.updated", 7, 7, [3, 4])  # from brand 3 to brand 4
    assert hits(deps.of_product({"product_id": "7"}, {}), moved)
    assert hits(deps.of_product_page({}, {"limit": "20"}), moved)
    assert hits(deps.of_product_page({}, {"q": "ka", "min_price": "100"}), moved)
    assert hits(deps.of_product_page({}, {"brand_id": "3"}), moved)
    assert hits(deps.of_product_page({}, {"brand_id": "4", "in_stock": "true"}), moved)
    assert hits(deps.of_sku_page({"product_id": "7"}, {}), moved)  # 404 once it is gone
    assert not hits(deps.of_product({"product_id": "8"}, {}), moved)
    assert not hits(deps.of_product_page({}, {"brand_id": "5"}), moved)
    assert not hits(deps.of_brands({}, {}), moved)
    assert not hits(deps.of_sku({"sku_id": "70"}, {}), moved)


def test_a_product_delete_drops_every_single_sku_answer() -> None:
    """Its SKUs go with it, recording no change of their own."""
    deleted = deps.touched("product.deleted", 7, 7, [3])
    assert hits(deps.of_sku({"sku_id": "70"}, {}), deleted)


def test_a_sku_change_drops_its_answer_and_the_pages_that_filter_by_skus() -> None:
    stock = deps.touched("sku.updated", 70, 7, [3])
    assert hits(deps.of_sku({"sku_id": "70"}, {}), stock)
    assert hits(deps.of_sku_page({"product_id": "7"}, {"after": "60"}), stock)
    assert hits(deps.of_product_page({}, {"in_stock": "true"}), stock)
    assert hits(deps.of_product_page({}, {"brand_id": "3", "max_price": "999"}), stock)
    assert not hits(deps.of_product({"product_id": "7"}, {}), stock)  # shows no SKU
    assert not hits(deps.of_product_page({}, {"limit": "5"}), stock)  # filters no SKU
    assert not hits(deps.of_sku({"sku_id": "71"}, {}), stock)
    assert not hits(deps.of_sku_page({"product_id": "8"}, {}), stock)


def test_a_brand_change_drops_the_brand_and_the_list() -> None:
    renamed = deps.touched("brand.updated", 3, None, [3])
    assert hits(deps.of_brand({"brand_id": "3"}, {}), renamed)
    assert hits(deps.of_brands({}, {}), renamed)
    assert not hits(deps.of_brand({"brand_id": "4"}, {}), renamed)
    assert not hits(deps.of_product_page({}, {"brand_id": "3"}), renamed)
