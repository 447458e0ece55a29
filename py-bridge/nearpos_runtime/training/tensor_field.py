"""Tensor-typed pydantic fields: the protocol's TensorField, also taking numpy arrays.

Python callers may pass numpy arrays; they are converted to torch tensors before the
protocol's check. The JSON Schema is the wire placeholder's (``{"$tensor": i}``).
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import torch
from pydantic import BeforeValidator

from nearpos_runtime.protocol.tensors import TensorField as _WireTensor


def _from_numpy(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    return value


TensorField = Annotated[_WireTensor, BeforeValidator(_from_numpy)]
