"""stc.cli."""
