"""Input checks shared by every entry point: clear errors that name the argument."""

from __future__ import annotations

import torch

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_embeddings(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D (rows x dim), got shape {tuple(x.shape)}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be float16, bfloat16, float32 or float64, got {x.dtype}"
        )
    if x.shape[1] == 0:
        raise ValueError(f"{name} has zero columns: embeddings need at least one dimension")
    if x.numel() and not bool(torch.isfinite(x.detach()).all()):
        raise ValueError(f"{name} contains NaN or Inf")
    return x


def check_index_vector(x: object, name: str, length: int, length_of: str) -> torch.Tensor:
    """A 1-D integer (or bool) vector with one entry per row of `length_of`."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(x.shape)}")
    if x.dtype.is_floating_point or x.dtype.is_complex:
        raise TypeError(f"{name} must hold integers, got {x.dtype}")
    if x.shape[0] != length:
        raise ValueError(
            f"{name} has {x.shape[0]} entries but {length_of} has {length} rows"
        )
    return x


def check_choice(value: object, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return str(value)


def check_tile_size(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"tile_size must be a positive int or None (automatic), got {value!r}")
    return value


def check_inputs(
    embeddings: object,
    labels: object,
    ref_embeddings: object | None,
    ref_labels: object | None,
    ids: object | None,
    ref_ids: object | None,
) -> tuple[
    torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None,
    torch.Tensor | None, torch.Tensor | None,
]:
    emb = check_embeddings(embeddings, "embeddings")
    lab = check_index_vector(labels, "labels", emb.shape[0], "embeddings")
    if (ref_embeddings is None) != (ref_labels is None):
        raise ValueError("pass ref_embeddings and ref_labels together, or neither")
    ref = rlab = None
    if ref_embeddings is not None:
        ref = check_embeddings(ref_embeddings, "ref_embeddings")
        if ref.shape[1] != emb.shape[1]:
            raise ValueError(
                f"ref_embeddings has dimension {ref.shape[1]} but embeddings has {emb.shape[1]}"
            )
        if ref.device != emb.device:
            raise ValueError(
                f"ref_embeddings is on {ref.device} but embeddings is on {emb.device}"
            )
        rlab = check_index_vector(ref_labels, "ref_labels", ref.shape[0], "ref_embeddings")
    i = ri = None
    if ids is not None:
        i = check_index_vector(ids, "ids", emb.shape[0], "embeddings")
    if ref_ids is not None:
        if ref is None:
            raise ValueError("ref_ids was given without ref_embeddings")
        ri = check_index_vector(ref_ids, "ref_ids", ref.shape[0], "ref_embeddings")
    if ref is not None and (i is None) != (ri is None):
        raise ValueError(
            "with ref_embeddings, pass ids and ref_ids together (or neither): "
            "identities are needed on both sides to exclude an anchor's own copies"
        )
    return emb, lab, ref, rlab, i, ri
