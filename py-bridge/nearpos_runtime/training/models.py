"""Embedding models: MLP, small conv net, torchvision backbones; L2-normalised head."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .config import ConvNetModel, MlpModel, TorchvisionModel

#: Largest model built (parameters): 1 GiB of float32 weights, four times that with Adam's
#: state and the gradients. The schema bounds each width; the product needs the data's
#: input size, so it is checked here, before anything is allocated.
MAX_PARAMETERS = 2**28


class ModelError(ValueError):
    """A model that cannot be built from its config, with the reason (a config mistake)."""

    code = "invalid_params"


def parameter_count(spec: MlpModel | ConvNetModel | TorchvisionModel, in_features: int) -> int:
    """Parameters of the network ``spec`` describes on ``in_features`` inputs (mlp, convnet;
    0 for torchvision backbones, whose size is fixed)."""
    if isinstance(spec, MlpModel):
        widths = [in_features, *spec.hidden, spec.embedding_dim]
        return sum((a + 1) * b for a, b in zip(widths, widths[1:], strict=False))
    if isinstance(spec, ConvNetModel):
        chans = [spec.in_channels, *spec.channels]
        convs = sum(a * b * 9 + 3 * b for a, b in zip(chans, chans[1:], strict=False))
        return convs + (chans[-1] + 1) * spec.embedding_dim
    return 0


def check_size(spec: MlpModel | ConvNetModel | TorchvisionModel, in_features: int) -> None:
    """ModelError naming the fields when the model would be over :data:`MAX_PARAMETERS`."""
    n = parameter_count(spec, in_features)
    if n > MAX_PARAMETERS:
        fields = "model.hidden and model.embedding_dim" if isinstance(spec, MlpModel) else (
            "model.channels and model.embedding_dim"
        )
        raise ModelError(
            f"{fields}: a {spec.kind} on {in_features:,} inputs would have {n:,} parameters, "
            f"over the limit of {MAX_PARAMETERS:,}; use narrower layers"
        )


class EmbeddingNet(nn.Module):
    """Backbone, linear head to ``embedding_dim``, optional L2 normalisation."""

    def __init__(self, backbone: nn.Module, features: int, dim: int, normalize: bool) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(features, dim)
        self.normalize = normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.head(self.backbone(x))
        return F.normalize(z, dim=1) if self.normalize else z


class _Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class _ToImage(nn.Module):
    def __init__(self, channels: int, side: int) -> None:
        super().__init__()
        self.channels, self.side = channels, side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:
            return x.view(x.shape[0], self.channels, self.side, self.side)
        return x


def build_model(spec: MlpModel | ConvNetModel | TorchvisionModel, in_features: int) -> nn.Module:
    """Build the network a spec describes; ``in_features``: flattened input size."""
    check_size(spec, in_features)
    if isinstance(spec, MlpModel):
        layers: list[nn.Module] = [_Flatten()]
        width = in_features
        for h in spec.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if spec.dropout:
                layers.append(nn.Dropout(spec.dropout))
            width = h
        return EmbeddingNet(nn.Sequential(*layers), width, spec.embedding_dim, spec.normalize)
    if isinstance(spec, ConvNetModel):
        side = spec.image_size
        if in_features != spec.in_channels * side * side:
            raise ModelError(
                f"model.in_channels, model.image_size: model convnet expects inputs of "
                f"{spec.in_channels}x{side}x{side} = {spec.in_channels * side * side} values, "
                f"the data has {in_features}"
            )
        layers = [_ToImage(spec.in_channels, side)]
        ch = spec.in_channels
        for c in spec.channels:
            layers += [nn.Conv2d(ch, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
            layers.append(nn.MaxPool2d(2))
            ch = c
        layers += [nn.AdaptiveAvgPool2d(1), _Flatten()]
        return EmbeddingNet(nn.Sequential(*layers), ch, spec.embedding_dim, spec.normalize)
    return _torchvision(spec)


def _torchvision(spec: TorchvisionModel) -> nn.Module:
    try:
        import torchvision.models as tvm  # noqa: PLC0415 - optional dependency
    except Exception as exc:  # torchvision may be installed yet fail to import
        raise ModelError(
            f"model '{spec.kind}' needs torchvision, which cannot be imported here "
            f"({type(exc).__name__}: {exc}); use 'mlp' or 'convnet', or install a "
            "torchvision build matching torch (pip install 'nearpos-runtime[backbones]')"
        ) from exc
    if spec.kind == "resnet50":
        net = tvm.resnet50(weights=None)
    else:
        net = tvm.googlenet(weights=None, aux_logits=False, init_weights=True)
    if spec.weights:
        path = Path(spec.weights)
        if not path.is_file():
            raise ModelError(f"model weights file not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=False)
    features = net.fc.in_features
    net.fc = nn.Identity()
    return EmbeddingNet(net, features, spec.embedding_dim, spec.normalize)


def freeze_batchnorm(model: nn.Module) -> None:
    """Keep BatchNorm layers in eval mode with frozen affine parameters."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)


def input_features(x_shape: torch.Size | tuple[int, ...]) -> int:
    return int(math.prod(x_shape[1:]))
