"""lihil: patches of its bugs and uses of its private API (LIHIL TRAPs)."""

PACKAGE = "lihil"
WRITTEN_FOR = "0.2.41"
