import os
import sys
from pathlib import Path

import pytest
import torch

# helper modules (np_*.py) sit next to the tests; importlib import mode does not add
# this folder to sys.path by itself
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def device() -> torch.device:
    """CPU by default; NEARPOS_TEST_DEVICE=cuda runs the same tests on the GPU."""
    name = os.environ.get("NEARPOS_TEST_DEVICE", "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("NEARPOS_TEST_DEVICE=cuda but CUDA is not available")
    return torch.device(name)
