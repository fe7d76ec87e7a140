"""engram.memory."""
