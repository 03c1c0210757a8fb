"""stc.ir."""
