import pytest
import torch

from nearest_positive import NearestPositive, create_loss, select

E = torch.randn(4, 3)
Y = torch.tensor([0, 0, 1, 1])


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(embeddings=torch.randn(4)), ValueError, "embeddings must be 2-D"),
    (dict(embeddings=torch.ones(4, 3, dtype=torch.long)), TypeError, "embeddings must be float"),
    (dict(embeddings=torch.full((4, 3), float("nan"))), ValueError, "embeddings contains NaN"),
    (dict(labels=torch.tensor([0, 1])), ValueError, "labels has 2 entries but embeddings has 4"),
    (dict(labels=torch.zeros(4)), TypeError, "labels must hold integers"),
    (dict(ref_embeddings=torch.randn(5, 3)), ValueError, "ref_embeddings and ref_labels together"),
    (dict(ref_embeddings=torch.randn(5, 2), ref_labels=torch.zeros(5, dtype=torch.long)),
     ValueError, "dimension 2"),
    (dict(ref_embeddings=torch.randn(5, 3), ref_labels=torch.zeros(5, dtype=torch.long),
          ids=torch.arange(4)), ValueError, "pass ids and ref_ids together"),
    (dict(ref_embeddings=torch.tensor([[float("inf")] * 3]), ref_labels=torch.zeros(1).long()),
     ValueError, "ref_embeddings contains NaN or Inf"),
    (dict(ids=torch.arange(3)), ValueError, "ids has 3 entries"),
    (dict(distance="manhattan"), ValueError, "distance must be one of"),
    (dict(on_missing="skip"), ValueError, "on_missing must be one of"),
    (dict(tile_size=0), ValueError, "tile_size"),
    (dict(strategy="easy"), ValueError, "strategy must be one of"),
])
def test_bad_inputs_name_the_argument(kwargs, err, match):
    args = dict(embeddings=E, labels=Y)
    args.update(kwargs)
    e, y = args.pop("embeddings"), args.pop("labels")
    with pytest.raises(err, match=match):
        select(e, y, **args)


def test_wrapper_checks_inputs():
    w = NearestPositive(create_loss("triplet"))
    with pytest.raises(ValueError, match="labels has 3 entries"):
        w(E, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="distance-weighted.*normalize"):
        NearestPositive(create_loss("margin"), negatives="distance-weighted", normalize=False)
