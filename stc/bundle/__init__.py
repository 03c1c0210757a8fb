"""stc.bundle."""
