"""SKUs: a product's sellable variants (size, color, price, stock), and their stock changes.

`models` are the wire shapes, `queries` the SQL (the bodies built by PostgreSQL exactly as
the feed's trigger builds `sku.*` data), `routes` the thin HTTP adapters.
"""
