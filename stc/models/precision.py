"""The GEMM precision setting shared by the model classes (``stc.precision``)."""

from __future__ import annotations

from stc.precision import check_precision


class PrecisionMixin:
    """Adds ``precision`` ("fp32" | "tf32" | "bf16", default "fp32") and ``set_precision`` to
    a model; its forward runs the linear/conv layers under ``stc.precision.gemm_precision``
    and returns float32 logits whatever the precision."""

    precision: str = "fp32"

    def set_precision(self, precision: str):
        """Set the GEMM precision of later forwards; returns the model.

        Raises:
            ValueError: precision not one of "fp32", "tf32", "bf16".
        """
        self.precision = check_precision(precision)
        return self
