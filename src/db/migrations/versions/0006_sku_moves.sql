-- Version 0006: a SKU whose product_id changes (only plain SQL can do that) was recorded as
-- one `sku.updated` naming the new product, so the old product's /ws/catalog listeners never
-- saw it leave, and the response cache kept the old product's SKU pages (they depend on
-- `product-skus:<id>`, which the change did not name) until something else touched them.
-- Such an update is now two changes, in this order: `sku.deleted` under the old product
-- (its brand), then `sku.created` under the new one. The rest is 0002's function unchanged,
-- with the append of a change in one function both use.
CREATE FUNCTION catalog_change_append(kind TEXT, row_data JSON, product INT, brands INT[])
RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    change_id BIGINT;
BEGIN
    PERFORM pg_advisory_xact_lock(7811951474431836418);  -- 'catalog feed', any fixed key
    change_id := nextval('catalog_change_id_seq');
    INSERT INTO catalog_change (id, type, data, product_id, brand_ids)
    VALUES (change_id, kind, row_data, product, brands);
    PERFORM pg_notify('catalog_change', change_id::text);
END
$$;

CREATE OR REPLACE FUNCTION catalog_change_record() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
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
        IF TG_OP = 'UPDATE' AND OLD.product_id <> NEW.product_id THEN
            -- A move: it leaves the old product (if that still exists), then arrives.
            SELECT ARRAY[p.brand_id] INTO brands FROM product p
            WHERE p.product_id = OLD.product_id;
            IF brands IS NOT NULL THEN
                PERFORM catalog_change_append(
                    'sku.deleted',
                    json_build_object('sku_id', OLD.sku_id, 'product_id', OLD.product_id),
                    OLD.product_id, brands);
            END IF;
            kind := 'created';
        END IF;
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
    PERFORM catalog_change_append(TG_TABLE_NAME || '.' || kind, row_data, product, brands);
    RETURN NULL;
END
$$;
