"""Models: shapes, normalisation, frozen BatchNorm, clear errors."""

from __future__ import annotations

import pytest
import torch

from nearpos_runtime.training.config import ConvNetModel, MlpModel, TorchvisionModel
from nearpos_runtime.training.models import ModelError, build_model, freeze_batchnorm


def test_mlp_normalised_embeddings():
    m = build_model(MlpModel(kind="mlp", hidden=[16], embedding_dim=5), in_features=12)
    z = m(torch.randn(4, 3, 4))
    assert z.shape == (4, 5)
    assert torch.allclose(z.norm(dim=1), torch.ones(4), atol=1e-5)
    raw_model = build_model(MlpModel(kind="mlp", embedding_dim=5, normalize=False), 12)
    raw = raw_model(torch.randn(4, 12))
    assert not torch.allclose(raw.norm(dim=1), torch.ones(4), atol=1e-3)


def test_convnet_and_frozen_bn():
    m = build_model(ConvNetModel(kind="convnet", channels=[4], embedding_dim=3), 784)
    freeze_batchnorm(m)
    bn = [x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)][0]
    before = bn.running_mean.clone()
    m(torch.randn(6, 784) * 3 + 1)
    assert torch.equal(before, bn.running_mean)
    assert not bn.weight.requires_grad
    with pytest.raises(ModelError, match="expects inputs of 1x28x28 = 784 values, the data has 10"):
        build_model(ConvNetModel(kind="convnet"), 10)


def test_torchvision_backbone_error_or_model():
    try:
        import torchvision  # noqa: F401

        available = True
    except Exception:
        available = False
    spec = TorchvisionModel(kind="resnet50", embedding_dim=8)
    if available:
        assert build_model(spec, 3 * 32 * 32)(torch.randn(2, 3, 32, 32)).shape == (2, 8)
    else:
        with pytest.raises(ModelError, match="needs torchvision"):
            build_model(spec, 3 * 32 * 32)
