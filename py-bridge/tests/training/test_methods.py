"""The runtime's training methods check params in Python too (clients may skip the schema)."""

from __future__ import annotations

import pytest
import torch

import nearpos_runtime.methods  # noqa: F401  (registers the methods)
from nearpos_runtime.errors import InvalidParams
from nearpos_runtime.registry import get_method

BASE = {"data": {"kind": "synthetic"}, "model": {"kind": "mlp"}}


def test_train_typo_names_the_field():
    with pytest.raises(InvalidParams, match=r"params\.batch\.per_clas"):
        get_method("train").validate({**BASE, "batch": {"per_clas": 4}})
    with pytest.raises(InvalidParams, match=r"params\.model"):
        get_method("train").validate({**BASE, "model": {"kind": "transformer"}})


def test_evaluate_needs_one_source():
    with pytest.raises(InvalidParams, match="either model and data, or embeddings and labels"):
        get_method("evaluate").validate({"ks": [1]})
    ok = get_method("evaluate").validate(
        {"embeddings": torch.zeros(3, 2), "labels": torch.tensor([0, 0, 1])}
    )
    assert ok.embeddings.shape == (3, 2)


def test_schemas_forbid_unknown_fields():
    schema = get_method("train").params_schema()
    assert schema["additionalProperties"] is False
    assert "TrainConfig" in schema.get("title", "")
