-- Version 0003: /ws/catalog?brand_id= reads only the brand's changes in the window it asks
-- for, in id order, a page at a time: what catalog_change_product_id_idx (product_id, id)
-- does for ?product_id=. The GIN index of 0002 on brand_ids finds a brand's rows, but not a
-- window of them nor their order: every page of a filtered replay read every retained
-- change of the brand (15,830 of 1,000,000: 5 to 15 ms a page, even for the few ids a
-- client's connect replays), and the generic plan PostgreSQL settles on for a prepared
-- statement walked the primary key through the window instead, testing every row.
--
-- Each change's brands (catalog_change.brand_ids, which the listener reads with the frame)
-- are also rows here, written by a trigger on catalog_change itself, so whatever inserts a
-- change (the record trigger of 0002, or plain SQL) indexes its brands; pruning a change
-- removes them (the cascade walks catalog_change_brand_id_idx).
CREATE TABLE catalog_change_brand (
    brand_id INT    NOT NULL,
    id       BIGINT NOT NULL REFERENCES catalog_change (id) ON DELETE CASCADE,
    PRIMARY KEY (brand_id, id)
);
-- A hash index: the cascade looks ids up one by one, and a range of ids cannot be read
-- through it, so no plan walks a window by id testing each row's brand.
CREATE INDEX catalog_change_brand_id_idx ON catalog_change_brand USING hash (id);

INSERT INTO catalog_change_brand (brand_id, id)
SELECT DISTINCT brand_id, c.id FROM catalog_change c, unnest(c.brand_ids) AS brand_id;

CREATE FUNCTION catalog_change_index_brands() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO catalog_change_brand (brand_id, id)
    SELECT DISTINCT brand_id, NEW.id FROM unnest(NEW.brand_ids) AS brand_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER catalog_change_brands AFTER INSERT ON catalog_change
    FOR EACH ROW WHEN (cardinality(NEW.brand_ids) > 0)
    EXECUTE FUNCTION catalog_change_index_brands();

DROP INDEX catalog_change_brand_ids_idx;
