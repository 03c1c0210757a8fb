"""Fuzzing the manifest parser: any input gives a dict or a BundleError, never another
exception; valid manifests with one field replaced by random JSON are rejected or accepted
consistently (accepted ones re-serialise to the same bytes)."""

import json

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from stc.bundle.io import build_manifest
from stc.bundle.manifest import REQUIRED, canonical_bytes, parse_manifest
from stc.errors import BundleError
from stc.ir.frontends import from_torch
from stc.nn import LIF

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids,
                                                              max_size=4),
    max_leaves=12)


def _valid() -> dict:
    m = nn.Sequential(nn.Linear(3, 2), LIF(backend="torch")).eval()
    man = build_manifest(from_torch(m, (3,)), name="t")
    man["members"] = {"weights.safetensors": {"sha256": "0" * 64, "size": 10}}
    return man


VALID = _valid()


def _check(data: bytes) -> None:
    try:
        m = parse_manifest(data)
    except BundleError:
        return
    assert canonical_bytes(m) == data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes(data):
    _check(data)


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_random_json(value):
    _check(json.dumps(value).encode())


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(REQUIRED), json_values)
def test_one_field_replaced(key, value):
    m = json.loads(json.dumps(VALID))
    m[key] = value
    _check(canonical_bytes(m))


def test_valid_manifest_parses():
    assert parse_manifest(canonical_bytes(VALID))["model"]["name"] == "t"
    assert torch.__version__  # torch imported for the model above
