-- Version 0002: a catalog a shop can run. SKUs get a price, a currency and a stock; product
-- names get a trigram index (GET /products?q=); SKU price and stock get the indexes the
-- filters walk; the feed records SKU changes, and each change row names the product and
-- the brands it touches (filtered feeds read only matching rows).

-- GET /products?q= is served by pg_trgm's index. The embedded server ships it; a server
-- given by DATABASE_URL may not: say what is missing instead of a bare "could not open
-- extension control file".
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        RAISE EXCEPTION 'this PostgreSQL server lacks the pg_trgm extension, which the '
            'product search index needs: install its contrib package (Debian: '
            'postgresql-contrib), then start again';
    END IF;
END
$$;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Price in minor units with its ISO 4217 code, stock as a count. Rows from an earlier
-- release get deterministic values (a function of the id), as the demo catalog does.
ALTER TABLE sku
    ADD COLUMN price    INT,
    ADD COLUMN currency TEXT,
    ADD COLUMN stock    INT;
UPDATE sku SET price = 499 + (sku_id * 7919) % 19501, currency = 'EUR', stock = (sku_id * 37) % 41;
ALTER TABLE sku
    ALTER COLUMN price SET NOT NULL,
    ALTER COLUMN currency SET NOT NULL,
    ALTER COLUMN stock SET NOT NULL,
    ADD CONSTRAINT sku_price_check CHECK (price >= 0),
    ADD CONSTRAINT sku_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
    -- Stock never goes below zero: a decrement past it fails here, whoever sends it.
    ADD CONSTRAINT sku_stock_check CHECK (stock >= 0);

ALTER TABLE product_size ADD CONSTRAINT product_size_name_check
    CHECK (char_length(product_size_name) BETWEEN 1 AND 50) NOT VALID;
ALTER TABLE product_color ADD CONSTRAINT product_color_name_check
    CHECK (char_length(product_color_name) BETWEEN 1 AND 50) NOT VALID;

-- The filters: ?q= walks the trigram index; ?min_price=/?max_price= and ?in_stock=true probe
-- a product's SKUs through these (index-only), or start from the price index when a range
-- is narrow. The (product_id, price) index also serves GET /products/{id}/skus and the
-- cascade of a product's delete, so the plain product_id index goes.
CREATE INDEX product_name_trgm_idx ON product USING gin (product_name gin_trgm_ops);
CREATE INDEX sku_product_id_price_idx ON sku (product_id, price);
CREATE INDEX sku_price_product_id_idx ON sku (price, product_id);
CREATE INDEX sku_in_stock_product_id_idx ON sku (product_id) WHERE stock > 0;
DROP INDEX sku_product_id_idx;

-- The feed's rows name what they touch: the product (of a product or SKU change) and the
-- brands (a brand's own change; a product's brand before and after; a SKU's product's
-- brand). /ws/catalog?product_id= and ?brand_id= are these indexed predicates.
ALTER TABLE catalog_change
    ADD COLUMN product_id INT,
    ADD COLUMN brand_ids  INT[] NOT NULL DEFAULT '{}';
UPDATE catalog_change SET
    product_id = CASE WHEN type LIKE 'product.%' THEN (data ->> 'product_id')::int END,
    brand_ids  = CASE WHEN data ->> 'brand_id' IS NULL THEN '{}'
                      ELSE ARRAY[(data ->> 'brand_id')::int] END;
CREATE INDEX catalog_change_product_id_idx ON catalog_change (product_id, id)
    WHERE product_id IS NOT NULL;
CREATE INDEX catalog_change_brand_ids_idx ON catalog_change USING gin (brand_ids);

-- Every change to a brand, product or SKU row, recorded in its own transaction (see 0001
-- for the lock that hands out ids in commit order). A SKU removed because its product was
-- deleted records nothing: the product's `product.deleted` stands for its SKUs.
CREATE OR REPLACE FUNCTION catalog_change_record() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    change_id BIGINT;
    kind      TEXT := CASE TG_OP WHEN 'INSERT' THEN 'created' WHEN 'UPDATE' THEN 'updated'
                                 ELSE 'deleted' END;
    row_data  JSON;
    product   INT;
    brands    INT[];
BEGIN
    IF TG_TABLE_NAME = 'product' THEN
        product := CASE WHEN TG_OP = 'DELETE' THEN OLD.product_id ELSE NEW.product_id END;
        brands := CASE TG_OP
            WHEN 'INSERT' THEN ARRAY[NEW.brand_id]
            WHEN 'DELETE' THEN ARRAY[OLD.brand_id]
            ELSE CASE WHEN OLD.brand_id = NEW.brand_id THEN ARRAY[NEW.brand_id]
                      ELSE ARRAY[OLD.brand_id, NEW.brand_id] END END;
        row_data := CASE WHEN TG_OP = 'DELETE'
            THEN json_build_object('product_id', OLD.product_id)
            ELSE json_build_object('product_id', NEW.product_id,
                                   'product_name', NEW.product_name,
                                   'brand_id', NEW.brand_id) END;
    ELSIF TG_TABLE_NAME = 'sku' THEN
        product := CASE WHEN TG_OP = 'DELETE' THEN OLD.product_id ELSE NEW.product_id END;
        SELECT ARRAY[p.brand_id] INTO brands FROM product p WHERE p.product_id = product;
        IF brands IS NULL THEN  -- its product is gone: deleted with it, or never there
            RETURN NULL;
        END IF;
        row_data := CASE WHEN TG_OP = 'DELETE'
            THEN json_build_object('sku_id', OLD.sku_id, 'product_id', OLD.product_id)
            ELSE json_build_object(
                'sku_id', NEW.sku_id,
                'product_id', NEW.product_id,
                'size', (SELECT product_size_name FROM product_size
                         WHERE product_size_id = NEW.product_size_id),
                'color', (SELECT product_color_name FROM product_color
                          WHERE product_color_id = NEW.product_color_id),
                'price', NEW.price,
                'currency', NEW.currency,
                'stock', NEW.stock) END;
    ELSE
        brands := ARRAY[CASE WHEN TG_OP = 'DELETE' THEN OLD.brand_id ELSE NEW.brand_id END];
        row_data := CASE WHEN TG_OP = 'DELETE'
            THEN json_build_object('brand_id', OLD.brand_id)
            ELSE json_build_object('brand_id', NEW.brand_id,
                                   'brand_name', NEW.brand_name) END;
    END IF;
    PERFORM pg_advisory_xact_lock(7811951474431836418);  -- 'catalog feed', any fixed key
    change_id := nextval('catalog_change_id_seq');
    INSERT INTO catalog_change (id, type, data, product_id, brand_ids)
    VALUES (change_id, TG_TABLE_NAME || '.' || kind, row_data, product, brands);
    PERFORM pg_notify('catalog_change', change_id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER sku_change AFTER INSERT OR DELETE ON sku
    FOR EACH ROW EXECUTE FUNCTION catalog_change_record();
CREATE TRIGGER sku_update AFTER UPDATE ON sku
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION catalog_change_record();
