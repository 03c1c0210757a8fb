"""stc.energy."""
