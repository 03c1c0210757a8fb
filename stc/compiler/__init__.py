"""stc.compiler."""
