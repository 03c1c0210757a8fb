"""The IR's error type (its own module so that graph.py and shapes.py share it without an
import cycle)."""

from __future__ import annotations

from stc.errors import StcError


class GraphError(StcError, ValueError):
    """An IR graph that is malformed: names the offending node and what is wrong."""
