"""Model tests run torch on one intra-op thread: on a shared 2-core CPU, OpenMP threads that
spin while other processes hold the cores slow small ops down by 10x or more."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
