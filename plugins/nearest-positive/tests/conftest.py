import os

import pytest
import torch


@pytest.fixture
def device() -> torch.device:
    """CPU by default; NEARPOS_TEST_DEVICE=cuda runs the same tests on the GPU."""
    name = os.environ.get("NEARPOS_TEST_DEVICE", "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("NEARPOS_TEST_DEVICE=cuda but CUDA is not available")
    return torch.device(name)
