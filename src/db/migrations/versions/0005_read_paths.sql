-- Version 0005: indexes for two read paths measured at 1,000,000 products and 5,000,000
-- SKUs (bench/catalog.py, docs/BENCHMARKS.md).

-- GET /products?q= usually walks products in id order, testing each name: with the name and
-- the brand in the index, that walk reads no table page (an index-only scan). A page took
-- 12 to 35 ms, table pages fetched one by one; index-only, 0.3 to 2.5 ms.
CREATE INDEX product_product_id_name_brand_idx ON product (product_id)
    INCLUDE (product_name, brand_id);

-- GET /products/{id}/skus pages a product's SKUs by id: read in that order, no sort.
CREATE INDEX sku_product_id_sku_id_idx ON sku (product_id, sku_id);
