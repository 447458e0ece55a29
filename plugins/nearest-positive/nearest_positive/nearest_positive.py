"""`NearestPositive`: wraps a tuple loss so that it trains on nearest-positive tuples."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from . import distributed as dist_utils
from ._validation import check_embeddings, check_index_vector
from .config import SamplerConfig, options_doc
from .losses import list_losses
from .losses.base import zero_loss
from .losses.support import classify
from .memory import Memory
from .mining import Miner, empty_diagnostics, warn_small_k


class NearestPositive(nn.Module):
    """Wrap ``loss`` so ``forward(embeddings, labels)`` uses sampled tuples.

    Drop-in for pytorch-metric-learning: ``loss_fn = NearestPositive(TripletMarginLoss())``
    then ``loss_fn(embeddings, labels)``. Also takes torch.nn.TripletMarginLoss /
    TripletMarginWithDistanceLoss and the losses of :mod:`nearest_positive.losses`.
    Losses on which a positive sampler has no effect are refused with ValueError.

    Args:
        loss: the loss module to drive.
        positives: ``"nearest"`` (default: the method), ``"all"``, ``"random"`` or
            ``"hardest"``.
        **options: the sampler options below (unknown names are a ValueError listing
            them); ``distance`` also takes a PML ``LpDistance(p=2)`` or
            ``CosineSimilarity()``, whose normalisation then applies. The distance is used
            to choose tuples only: the loss keeps its own.

    With ``memory_size``, past batches are kept detached, with labels and ids; an anchor
    never takes its own past copy. With ``distributed``, every rank computes the loss of
    the *global* batch, which it returns: the value equals single-process training on the
    concatenated batch, and so do the gradients reaching each rank's embeddings.
    DistributedDataParallel averages parameter gradients over ranks; set
    ``scale_by_world_size=True`` to cancel that average.

    ``forward(embeddings, labels, ids=None)``: ``ids`` are optional integer identities
    (e.g. dataset indices); by default each call's rows get fresh ids.
    ``last_diagnostics`` holds the counts and mean distances of the last call (with
    ``distributed``, of this rank's anchors).
    """

    def __init__(self, loss: nn.Module, positives: str = "nearest", **options: Any) -> None:
        super().__init__()
        cfg = SamplerConfig.from_dict(options)
        self.config = cfg
        self.loss = loss
        self.family, native = classify(loss, needs_ref=cfg.memory_size > 0 or cfg.distributed)
        form = native if cfg.output == "auto" else cfg.output
        if self.family == "torch" and form == "pairs":
            raise ValueError(f"{type(loss).__name__} takes triplets; output='pairs' is invalid")
        self.positives = positives
        self.miner = Miner(dataclasses.replace(cfg, output=form), positives)
        self.memory = Memory(cfg.memory_size)
        self.last_diagnostics: dict[str, float | int] = empty_diagnostics()
        self._next_id = 0
        self._warned = not cfg.warn_small_k or positives != "nearest"

    @staticmethod
    def supported_losses() -> list[str]:
        """The loss names it drives: :func:`nearest_positive.losses.list_losses`."""
        return list_losses()

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.memory.size == 0 and not self.config.distributed:
            return self._forward_in_batch(embeddings, labels, ids)
        check_embeddings(embeddings, "embeddings")
        check_index_vector(labels, "labels", embeddings.shape[0], "embeddings")
        labels = labels.to(embeddings.device)
        if ids is not None:
            check_index_vector(ids, "ids", embeddings.shape[0], "embeddings")
            ids = ids.to(embeddings.device).long()
        if not self._warned:
            warn_small_k(labels)
            self._warned = True

        offset, world = 0, 1
        if self.config.distributed:
            if not dist_utils.is_active():
                raise RuntimeError(
                    "distributed=True but torch.distributed is not initialised "
                    "(call torch.distributed.init_process_group first)"
                )
            g_emb, sizes = dist_utils.gather(embeddings)
            g_lab, _ = dist_utils.gather(labels)
            rank = torch.distributed.get_rank()
            offset, world = sum(sizes[:rank]), len(sizes)
            g_ids = dist_utils.gather(ids)[0] if ids is not None else None
        else:
            g_emb, g_lab, g_ids = embeddings, labels, ids
        total = g_emb.shape[0]
        if g_ids is None:  # fresh ids per call keep past copies in memory distinct
            g_ids = self._next_id + torch.arange(total, device=embeddings.device)
            self._next_id += total

        ref, ref_lab, ref_ids = g_emb, g_lab, g_ids
        mem = self.memory.contents()
        if mem is not None:
            ref = torch.cat([g_emb, mem[0].to(g_emb.dtype)])
            ref_lab = torch.cat([g_lab, mem[1].to(g_lab.dtype)])
            ref_ids = torch.cat([g_ids, mem[2]])

        local_ids = g_ids[offset : offset + embeddings.shape[0]]
        if mem is None and not self.config.distributed:  # the batch is its own reference
            tup = self.miner(embeddings.detach(), labels, ids=local_ids)
        else:
            tup = self.miner(
                embeddings.detach(), labels, ref.detach(), ref_lab, ids=local_ids,
                ref_ids=ref_ids,
            )
        self.last_diagnostics = dict(self.miner.last_diagnostics)
        if offset:
            anchor_slots = (0,) if len(tup) == 3 else (0, 2)
            tup = tuple(t + offset if i in anchor_slots else t for i, t in enumerate(tup))
        if self.config.distributed:
            tup = tuple(dist_utils.gather(t)[0] for t in tup)

        uses_ref = mem is not None or self.config.distributed
        value = self._call_loss(g_emb, g_lab, tup, ref if uses_ref else None,
                                ref_lab if uses_ref else None)
        self.memory.enqueue(g_emb, g_lab, g_ids)
        if self.config.distributed and self.config.scale_by_world_size:
            value = value * world
        return value

    def _forward_in_batch(
        self, embeddings: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor | None
    ) -> torch.Tensor:
        """The batch is its own reference: the miner checks every input (once: each check
        is a pass over the batch), ids default to positions."""
        emb = embeddings.detach() if isinstance(embeddings, torch.Tensor) else embeddings
        tup = self.miner(emb, labels, ids=ids)
        labels = labels.to(embeddings.device)
        if not self._warned:
            warn_small_k(labels)
            self._warned = True
        self.last_diagnostics = dict(self.miner.last_diagnostics)
        return self._call_loss(embeddings, labels, tup, None, None)

    def _call_loss(
        self,
        emb: torch.Tensor,
        labels: torch.Tensor,
        tup: tuple[torch.Tensor, ...],
        ref: torch.Tensor | None,
        ref_labels: torch.Tensor | None,
    ) -> torch.Tensor:
        if self.family == "torch":
            a, p, n = tup
            if len(a) == 0:
                return zero_loss(emb)
            r = emb if ref is None else ref
            return self.loss(emb[a], r[p], r[n])
        return self.loss(emb, labels, tup, ref, ref_labels)

    def reset_memory(self) -> None:
        self.memory.reset()


NearestPositive.__doc__ = (NearestPositive.__doc__ or "") + options_doc()
