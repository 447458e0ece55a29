"""Tensors <-> frames for every dtype, empty, 0-d and non-contiguous tensors."""

from __future__ import annotations

import pytest
import torch

from nearpos_runtime.protocol.errors import ProtocolError
from nearpos_runtime.protocol.tensors import (
    DTYPES,
    decode_buffers,
    decode_value,
    encode_value,
    frame_to_tensor,
)


def sample(dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=gen).bool()
    if dtype.is_floating_point:
        return torch.randn(shape, generator=gen).to(dtype)
    info = torch.iinfo(dtype)
    return torch.randint(max(info.min, -1000), min(info.max, 1000), shape, generator=gen).to(dtype)


def round_trip(value: object) -> object:
    encoded, descriptors, frames = encode_value(value)
    header = {"buffers": descriptors}
    # copy frames as a receiver gets them (fresh bytes objects)
    return decode_value(encoded, decode_buffers(header, [memoryview(bytes(f)) for f in frames]))


@pytest.mark.parametrize("name", list(DTYPES))
@pytest.mark.parametrize("shape", [(3, 5), (), (0,), (2, 0, 3), (7,)])
def test_every_dtype_and_shape(name: str, shape: tuple[int, ...]) -> None:
    tensor = sample(DTYPES[name], shape)
    encoded, descriptors, frames = encode_value({"t": tensor})
    assert descriptors == [
        {"dtype": name, "shape": list(shape), "nbytes": tensor.numel() * tensor.element_size()}
    ]
    assert encoded == {"t": {"$tensor": 0}}
    out = round_trip({"t": tensor})["t"]
    assert out.dtype == tensor.dtype and out.shape == tensor.shape
    assert torch.equal(out, tensor)


def test_raw_16_bit_patterns_and_little_endian() -> None:
    t = torch.tensor([1.0, -2.0], dtype=torch.bfloat16)
    _, _, frames = encode_value(t)
    assert bytes(frames[0]) == bytes.fromhex("803f00c0")  # 0x3f80, 0xc000 little-endian
    h = torch.tensor([1.0], dtype=torch.float16)
    assert bytes(encode_value(h)[2][0]) == bytes.fromhex("003c")
    assert bytes(encode_value(torch.tensor([1], dtype=torch.int64))[2][0]) == b"\x01" + b"\0" * 7


def test_non_contiguous_is_sent_contiguous() -> None:
    base = torch.arange(12, dtype=torch.int32).reshape(3, 4)
    view = base.t()
    assert not view.is_contiguous()
    out = round_trip([view, base[:, ::2]])
    assert torch.equal(out[0], view) and torch.equal(out[1], base[:, ::2])


def test_nested_placeholders_and_numbers() -> None:
    a, b = torch.ones(2), torch.zeros(3, dtype=torch.int64)
    value = {"x": [1, {"y": a}, (b, "s")], "nan": float("nan"), "z": None}
    encoded, descriptors, _ = encode_value(value)
    assert encoded["x"][1] == {"y": {"$tensor": 0}} and encoded["x"][2][0] == {"$tensor": 1}
    assert encoded["nan"] is None  # JSON has no NaN
    out = round_trip(value)
    assert torch.equal(out["x"][1]["y"], a) and torch.equal(out["x"][2][0], b)


def test_receive_shares_memory_when_aligned() -> None:
    data = bytearray(torch.arange(1024, dtype=torch.float32).numpy().tobytes())
    t = frame_to_tensor(memoryview(data), {"dtype": "float32", "shape": [1024], "nbytes": 4096}, 0)
    data[0:4] = torch.tensor([42.0]).numpy().tobytes()
    assert t[0].item() == 42.0


def test_unaligned_frames_are_copied() -> None:
    raw = bytearray(9 * 8)
    view = memoryview(raw)[1 : 1 + 64]
    t = frame_to_tensor(view, {"dtype": "int64", "shape": [8], "nbytes": 64}, 0)
    assert t.data_ptr() % 8 == 0 and torch.equal(t, torch.zeros(8, dtype=torch.int64))


def test_schema_like_objects_are_data() -> None:
    schema = {"properties": {"$tensor": {"type": "integer"}}}
    assert round_trip(schema) == schema
    with pytest.raises(TypeError, match="reserved"):
        encode_value({"a": {"$tensor": 0}})


@pytest.mark.parametrize(
    ("desc", "frame", "match"),
    [
        ({"dtype": "complex64", "shape": [1], "nbytes": 8}, b"\0" * 8, "unknown"),
        ({"dtype": "float32", "shape": [2], "nbytes": 4}, b"\0" * 4, "needs 8"),
        ({"dtype": "float32", "shape": [2], "nbytes": 8}, b"\0" * 4, "frame 0 has 4"),
        ({"dtype": "float32", "shape": [-1], "nbytes": 4}, b"\0" * 4, "shape"),
        ({"dtype": "bool", "shape": [2], "nbytes": 2}, b"\0\2", "0/1"),
        ("nope", b"", "not an object"),
    ],
)
def test_bad_descriptors(desc: object, frame: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match) as info:
        frame_to_tensor(memoryview(frame), desc, 0)
    assert info.value.code == "bad_tensor"


def test_bad_placeholders_and_counts() -> None:
    with pytest.raises(ProtocolError, match="out of range"):
        decode_value({"a": {"$tensor": 1}}, [torch.ones(1)])
    with pytest.raises(ProtocolError, match="lists 1 tensors but 0 frames"):
        decode_buffers({"buffers": [{"dtype": "uint8", "shape": [0], "nbytes": 0}]}, [])
    with pytest.raises(TypeError, match="complex"):
        encode_value(torch.ones(1, dtype=torch.complex64))


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ([2**53 - 1, 2**53 - 1, 0], "exceeds 2\\*\\*53 - 1"),
        ([2**64, 0], "exceeds 2\\*\\*53 - 1"),
        ([1] * 33, "33 dimensions, more than 32"),
        ([True], "integers >= 0"),
        ([2.0], "integers >= 0"),
        ("2", "must be a list"),
    ],
)
def test_shapes_torch_cannot_hold_are_bad_tensors(shape: object, match: str) -> None:
    desc = {"dtype": "float32", "shape": shape, "nbytes": 0}
    with pytest.raises(ProtocolError, match=match) as info:
        frame_to_tensor(memoryview(b""), desc, 0)
    assert info.value.code == "bad_tensor"


def test_the_largest_shapes_allowed_still_decode() -> None:
    for shape in ([2**53 - 1, 0], [0, 2**53 - 1], [1] * 32, [2**26, 2**27 - 1, 0]):
        nbytes = 0 if 0 in shape else 8
        desc = {"dtype": "int64", "shape": shape, "nbytes": nbytes}
        t = frame_to_tensor(memoryview(b"\0" * nbytes), desc, 0)
        assert list(t.shape) == shape and t.numel() == nbytes // 8


def nested(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_depth_is_bounded_both_ways() -> None:
    from nearpos_runtime.protocol.tensors import MAX_DEPTH

    ok = {"v": nested(MAX_DEPTH - 1)}  # the content at 1, lists at 2 ... MAX_DEPTH
    assert decode_value(ok, []) == ok and encode_value(ok)[0] == ok
    deep = {"v": nested(MAX_DEPTH)}
    with pytest.raises(ProtocolError, match=f"deeper than {MAX_DEPTH}") as info:
        decode_value(deep, [])
    assert info.value.code == "malformed"
    with pytest.raises(ValueError, match=f"deeper than {MAX_DEPTH}"):
        encode_value(deep)
    with pytest.raises(ValueError, match=f"deeper than {MAX_DEPTH}"):
        encode_value({"v": nested(5000)})  # no RecursionError on the way
    with pytest.raises(ValueError, match="33 dimensions"):
        encode_value({"t": torch.zeros([1] * 33)})
