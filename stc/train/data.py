"""The UCI optical-digits data set (sklearn.datasets.load_digits): 1,797 real 8 x 8 scans of
handwritten digits, 16 grey levels, 10 classes (Alpaydin & Kaynak, UCI ML repository, 1998).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class DigitsSplit:
    """A fixed, stratified train / held-out split.

    Attributes:
        x_train, x_test: images [n, 1, 8, 8] float32 in [0, 1] (grey level / 16).
        y_train, y_test: labels [n] int64 in 0..9.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits_split(test_fraction: float = 0.2, seed: int = 0) -> DigitsSplit:
    """Load sklearn's digits, scale to [0, 1], split stratified by class with a fixed seed.

    Args:
        test_fraction: held-out share in (0, 1) (default 0.2: 1,437 train / 360 test).
        seed: random_state of the split.

    Raises:
        ValueError: test_fraction outside (0, 1).
    """
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype("float32") / 16.0)[:, None, :, :]
    y = digits.target.astype("int64")
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, stratify=y,
                                              random_state=seed)
    return DigitsSplit(torch.from_numpy(x_tr), torch.from_numpy(y_tr),
                       torch.from_numpy(x_te), torch.from_numpy(y_te))
