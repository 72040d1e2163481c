"""`make bench`: this service against reference implementations, side by side, in one run."""
