"""engram.qa."""
