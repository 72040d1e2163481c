"""Filtered catalog feeds read a brand's changes in order: a (brand_id, id) index of the
feed's brand tags, replacing the GIN index on catalog_change.brand_ids."""

from src.db.migrate import run_sql_file

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    run_sql_file(__file__)
