"""What ``stc train`` records about its data in a checkpoint: the input contract (dtype,
shape, range, preprocessing, encoding; stc.runtime.contract) and the dataset split, so that
``stc bundle`` can carry the contract and calibrate fixed point on the held-out split.

Stored in config.json under "metadata": {"input_contract": {...}, "dataset": {"name":
"digits", "seed": int, "test_fraction": float}}.
"""

from __future__ import annotations

import json
from pathlib import Path

from stc.runtime.contract import make_contract, validate_contract

DIGITS_STEP = 1.0 / 16.0


def digits_input_contract(shape=(1, 8, 8)) -> dict:
    """The contract of stc.train.load_digits_split's images: float32 in [0, 1], multiples of
    1/16 (grey level 0..16 divided by 16), direct encoding (repeated over T)."""
    return make_contract(shape, lo=0.0, hi=1.0, dtype="float32", step=DIGITS_STEP,
                         scale=DIGITS_STEP, offset=0.0, raw_range=[0.0, 16.0],
                         description="sklearn digits grey level (0..16) / 16 "
                                     "(stc.train.load_digits_split)", encoding="direct")


def training_record(seed: int, test_fraction: float = 0.2, shape=(1, 8, 8)) -> dict:
    """Checkpoint metadata entries for a model trained on the digits split."""
    return {"input_contract": digits_input_contract(shape),
            "dataset": {"name": "digits", "seed": int(seed),
                        "test_fraction": float(test_fraction)}}


def read_training_record(checkpoint: str | Path) -> dict:
    """The checkpoint's {"input_contract": dict | None, "dataset": dict | None} (None for
    checkpoints written before contracts).

    Raises:
        ValueError: a malformed recorded contract.
    """
    p = Path(checkpoint) / "config.json"
    meta = json.loads(p.read_text(encoding="utf-8")).get("metadata", {}) if p.is_file() else {}
    c = meta.get("input_contract")
    return {"input_contract": None if c is None else validate_contract("input", c),
            "dataset": meta.get("dataset")}


def heldout_split(dataset: dict):
    """(x [n, 1, 8, 8] float32 numpy, y [n] int64 numpy): the held-out split a checkpoint's
    dataset record names.

    Raises:
        ValueError: a dataset other than "digits".
    """
    from .data import load_digits_split

    if not isinstance(dataset, dict) or dataset.get("name") != "digits":
        raise ValueError(f"no held-out data for the recorded dataset {dataset!r}; pass "
                         "--calibration data.npy")
    d = load_digits_split(dataset.get("test_fraction", 0.2), dataset.get("seed", 0))
    return d.x_test.numpy(), d.y_test.numpy()
