"""Mint a bearer token for catalog writes: `python -m scripts.token [--sub NAME] [--ttl S]`.

Signs with JWT_SECRET (environment or .env), or with the development secret `make run`
keeps in the data folder. Prints the token alone, for `export CATALOG_TOKEN=$(...)`.
"""

import argparse
import sys

from src.auth import dev_secret_file, mint
from src.config import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.token", description=__doc__)
    parser.add_argument("--sub", default="catalog-admin", help="the token's subject")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    secret = settings.JWT_SECRET
    if not secret:
        path = dev_secret_file(settings)
        if not path.is_file():
            print(
                f"error: JWT_SECRET is unset and there is no development secret at {path} "
                "(`make run` creates one)",
                file=sys.stderr,
            )
            return 2
        secret = path.read_text().strip()
    if args.ttl < 1:
        print("error: --ttl must be at least 1 second", file=sys.stderr)
        return 2
    print(mint(secret, audience=settings.JWT_AUDIENCE, subject=args.sub, ttl_s=args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
