"""Application services: each a thin sequence of load, decide, append, return."""
