"""engram.perception."""
