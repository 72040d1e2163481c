"""${message}"""

from src.db.migrate import run_sql_file

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}


def upgrade() -> None:
    run_sql_file(__file__)  # the .sql file of the same name beside this one
