"""engram.planners."""
