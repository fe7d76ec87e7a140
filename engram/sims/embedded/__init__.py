"""engram.sims.embedded."""
