"""stc.models."""
