"""Tensors <-> buffer frames, and ``{"$tensor": i}`` placeholders inside JSON values.

Frames are raw little-endian C-contiguous bytes. float16/bfloat16 travel as their 16-bit
patterns, bool as one byte per element. Received tensors share the frame's memory
(``torch.frombuffer``) where the frame is aligned for the dtype; a method that writes into
such a tensor writes into the received message, which nothing else reads.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import warnings
from collections.abc import Sequence
from typing import Annotated, Any

import torch
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import core_schema

from .errors import ProtocolError

if sys.byteorder != "little":  # pragma: no cover - every supported platform is little-endian
    raise ImportError("nearpos_runtime needs a little-endian host (frames are little-endian)")

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
DTYPE_NAMES: dict[torch.dtype, str] = {v: k for k, v in DTYPES.items()}
TENSOR_KEY = "$tensor"
# Limits of docs/protocol.md (Envelope). Deeper JSON would exhaust the recursion of the
# walks below; larger shapes overflow torch's size arithmetic (and JS's exact integers).
MAX_DEPTH = 64
MAX_NDIM = 32
MAX_ELEMENTS = 2**53 - 1

# Frames from ZeroMQ are read-only; torch warns on every frombuffer of one. Writes are
# harmless (the frame belongs to this message alone), so the warning is noise here.
warnings.filterwarnings("ignore", message="The given buffer is not writable", category=UserWarning)


def descriptor(tensor: torch.Tensor) -> dict[str, Any]:
    return {
        "dtype": dtype_name(tensor.dtype),
        "shape": list(tensor.shape),
        "nbytes": tensor.numel() * tensor.element_size(),
    }


def dtype_name(dtype: torch.dtype) -> str:
    try:
        return DTYPE_NAMES[dtype]
    except KeyError:
        raise TypeError(
            f"tensor dtype {dtype} cannot be sent; supported: {', '.join(DTYPES)}"
        ) from None


def tensor_to_frame(tensor: torch.Tensor) -> memoryview:
    """The tensor's bytes, C-contiguous, on the CPU; shares memory when already so."""
    dtype_name(tensor.dtype)
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    if flat.numel() == 0:
        return memoryview(b"")
    # numpy has no bfloat16: move every dtype as raw bytes.
    return memoryview(flat.view(torch.uint8).numpy()).cast("B")


def shape_problem(shape: Any) -> str | None:
    """What makes ``shape`` unusable, or None: a list of at most ``MAX_NDIM`` integers >= 0
    whose product, counting a zero as one, is at most ``MAX_ELEMENTS``."""
    if not isinstance(shape, list):
        return "must be a list of integers >= 0"
    if len(shape) > MAX_NDIM:
        return f"has {len(shape)} dimensions, more than {MAX_NDIM}"
    product = 1
    for d in shape:
        if not isinstance(d, int) or isinstance(d, bool) or d < 0:
            return "must be a list of integers >= 0"
        product *= max(d, 1)
        if product > MAX_ELEMENTS:  # early exit: Python ints would grow without bound
            return (
                f"{shape if len(str(shape)) < 200 else '[...]'} is too large: the product of "
                f"its dimensions (zeros counted as 1) exceeds 2**53 - 1"
            )
    return None


def frame_to_tensor(frame: memoryview, desc: Any, index: int) -> torch.Tensor:
    """Rebuild buffer ``index`` from its descriptor; ProtocolError(bad_tensor) on mismatch."""
    where = f"header.buffers[{index}]"
    if not isinstance(desc, dict):
        raise ProtocolError("bad_tensor", f"{where} is not an object")
    name, shape, nbytes = desc.get("dtype"), desc.get("shape"), desc.get("nbytes")
    if name not in DTYPES:
        raise ProtocolError(
            "bad_tensor", f"{where}.dtype {name!r} is unknown; known: {', '.join(DTYPES)}"
        )
    problem = shape_problem(shape)
    if problem:
        raise ProtocolError("bad_tensor", f"{where}.shape {problem}")
    dtype = DTYPES[name]
    itemsize = torch.empty((), dtype=dtype).element_size()
    expected = math.prod(shape) * itemsize
    if nbytes != expected or isinstance(nbytes, bool):
        raise ProtocolError(
            "bad_tensor", f"{where}.nbytes is {nbytes!r}; shape {shape} of {name} needs {expected}"
        )
    if frame.nbytes != expected:
        raise ProtocolError(
            "bad_tensor", f"buffer frame {index} has {frame.nbytes} bytes, header says {expected}"
        )
    if expected == 0:  # torch.frombuffer raises on empty buffers
        return torch.empty(shape, dtype=dtype)
    with warnings.catch_warnings():
        # The received frame belongs to this message alone, so a method writing into the
        # tensor harms no one; torch warns about read-only buffers regardless.
        warnings.filterwarnings("ignore", message="The given buffer is not writable")
        tensor = torch.frombuffer(frame, dtype=dtype)
    if tensor.data_ptr() % itemsize:  # small frames live unaligned inside the ZeroMQ message
        tensor = tensor.clone()
    if dtype == torch.bool and bool((tensor.view(torch.uint8) > 1).any()):
        raise ProtocolError("bad_tensor", f"buffer frame {index} (bool) holds bytes other than 0/1")
    return tensor.reshape(shape)


class Encoder:
    """Walks a JSON-able value, replacing tensors by placeholders and collecting frames."""

    def __init__(self) -> None:
        self.descriptors: list[dict[str, Any]] = []
        self.frames: list[memoryview] = []

    def add(self, tensor: torch.Tensor) -> dict[str, int]:
        problem = shape_problem(list(tensor.shape))
        if problem:
            raise ValueError(f"a tensor's shape {problem}")
        self.descriptors.append(descriptor(tensor))
        self.frames.append(tensor_to_frame(tensor))
        return {TENSOR_KEY: len(self.frames) - 1}

    def encode(self, value: Any, path: str = "$", depth: int = 1) -> Any:
        """``depth``: that of ``value`` in the message content (the content is at 1)."""
        if isinstance(value, (dict, list, tuple, torch.Tensor)) and depth > MAX_DEPTH:
            # (a tensor becomes a placeholder object: a level too)
            raise ValueError(f"{path}: nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, torch.Tensor):
            return self.add(value)
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else None  # JSON has no NaN/Infinity
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if not isinstance(k, str):
                    raise TypeError(f"{path}: object keys must be strings, got {type(k).__name__}")
                out[k] = self.encode(v, f"{path}.{k}", depth + 1)
            if is_placeholder(out):
                raise TypeError(
                    f"{path}: an object whose only key is '$tensor' with an integer value "
                    "is reserved for tensor placeholders"
                )
            return out
        if isinstance(value, (list, tuple)):
            return [self.encode(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
        if hasattr(value, "model_dump"):  # pydantic models
            return self.encode(value.model_dump(), path, depth)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self.encode(dataclasses.asdict(value), path, depth)
        if type(value).__module__ == "numpy":
            if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
                return self.add(torch.from_numpy(value))
            return self.encode(value.item(), path, depth)
        raise TypeError(f"{path}: {type(value).__name__} cannot be sent as JSON or a tensor")


def is_placeholder(value: dict[str, Any]) -> bool:
    """``{"$tensor": <integer>}``; with a non-integer value the object is ordinary JSON
    (the JSON Schema of a tensor field holds ``{"$tensor": {"type": "integer"}}``)."""
    if len(value) != 1 or TENSOR_KEY not in value:
        return False
    index = value[TENSOR_KEY]
    return isinstance(index, int) and not isinstance(index, bool)


def _plain(value: Any, depth: int) -> bool:
    """True when ``value`` is JSON as it stands: exact dict/list/str/int/bool/None, finite
    floats, string keys, no tensor, nothing reserved, nothing deeper than ``MAX_DEPTH``.
    Such a value needs no walk (the ``Encoder`` would return an equal copy); anything else
    takes the full walk, which also reports what is wrong."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if depth > MAX_DEPTH:
        return False
    if kind is dict:
        if TENSOR_KEY in value:
            return False
        for k, v in value.items():
            if type(k) is not str or not _plain(v, depth + 1):
                return False
        return True
    if kind is list:
        for v in value:
            if not _plain(v, depth + 1):
                return False
        return True
    return False


def encode_value(value: Any, depth: int = 1) -> tuple[Any, list[dict[str, Any]], list[memoryview]]:
    """(JSON value with placeholders, buffer descriptors, buffer frames). ``depth`` is that
    of ``value`` in the message content; ValueError when anything nests deeper than
    ``MAX_DEPTH``."""
    if _plain(value, depth):
        return value, [], []
    encoder = Encoder()
    encoded = encoder.encode(value, depth=depth)
    return encoded, encoder.descriptors, encoder.frames


def decode_value(value: Any, tensors: Sequence[torch.Tensor], depth: int = 1) -> Any:
    """Replace every ``{"$tensor": i}`` in ``value`` by ``tensors[i]``; ProtocolError
    (malformed) when anything nests deeper than ``MAX_DEPTH`` (``value`` is at ``depth``)."""
    if isinstance(value, (dict, list)) and depth > MAX_DEPTH:
        raise ProtocolError("malformed", f"the content nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        if is_placeholder(value):
            index = value[TENSOR_KEY]
            if not 0 <= index < len(tensors):
                raise ProtocolError(
                    "bad_tensor", f"$tensor index {index} out of range ({len(tensors)} buffers)"
                )
            return tensors[index]
        return {k: decode_value(v, tensors, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_value(v, tensors, depth + 1) for v in value]
    return value


def decode_buffers(header: dict[str, Any], frames: Sequence[memoryview]) -> list[torch.Tensor]:
    descs = header["buffers"]
    if len(descs) != len(frames):
        raise ProtocolError(
            "bad_tensor", f"header.buffers lists {len(descs)} tensors but {len(frames)} frames came"
        )
    return [frame_to_tensor(f, d, i) for i, (f, d) in enumerate(zip(frames, descs, strict=True))]


TENSOR_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {TENSOR_KEY: {"type": "integer"}},
    "required": [TENSOR_KEY],
}


class _TensorAnnotation:
    """Pydantic hooks: accept a torch.Tensor as is; JSON Schema is the placeholder's."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def check(value: Any) -> torch.Tensor:
            if not isinstance(value, torch.Tensor):
                raise ValueError('expected a tensor ({"$tensor": i})')
            return value

        return core_schema.no_info_plain_validator_function(
            check, serialization=core_schema.plain_serializer_function_ser_schema(lambda v: v)
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return dict(TENSOR_JSON_SCHEMA)


TensorField = Annotated[torch.Tensor, _TensorAnnotation]
"""Type of a tensor field in a method's params model."""
