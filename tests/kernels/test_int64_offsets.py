"""int64 offsets: every Triton kernel addresses elements beyond 2**31 correctly.

``_huge_offsets.py`` (run in its own process: a wrong offset is a wild read that may crash)
launches each kernel under the interpreter on tensors of T = 3 x N = 2**30 + 64 elements
(attention: a time stride of 2**30 + 256) backed by untouched ``MAP_NORESERVE`` memory, with
one program placed on the last block, so t * N exceeds 2**31 - 1 while N is an int32
argument, and compares what it wrote with the pure-PyTorch reference on the same values. An
int32 ``t * N`` wraps in the interpreter as on a GPU: with the old ``t * N + offs`` store the
ALIF kernel crashes the script (checked when this test was written).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("_huge_offsets.py")
KERNELS = ["lif_fwd", "lif_bwd", "alif_fwd", "alif_bwd", "cuba_lif_fwd", "cuba_lif_bwd",
           "cuba_fixed_fwd", "ssa_fwd", "sdsa_kv+sdsa_out", "dsformer_fwd"]


@pytest.mark.skipif(sys.platform != "linux", reason="needs Linux MAP_NORESERVE mappings")
def test_kernels_at_offsets_above_2_to_31():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    res = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True,
                         text=True, timeout=600, check=False)
    done = [line.split(" ", 1)[1] for line in res.stdout.splitlines() if line.startswith("ok ")]
    assert res.returncode == 0 and done == KERNELS, (
        f"rc={res.returncode}, passed {done}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
