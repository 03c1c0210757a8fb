"""stc.runtime."""
