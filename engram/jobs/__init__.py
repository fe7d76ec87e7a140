"""End-to-end jobs behind the `engram` command (explore, map): they read every layer."""
