"""stc.passes."""
