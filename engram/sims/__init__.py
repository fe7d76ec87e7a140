"""engram.sims."""
