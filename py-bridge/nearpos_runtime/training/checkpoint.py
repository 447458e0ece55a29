"""Checkpoint files: write (atomic), read, and restore a run from one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .atomic import write_atomic
from .errors import ConfigError, TrainingError
from .run_state import Progress, RunParts
from .selection import Best

CHECKPOINT_FORMAT = 1


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """torch.save through :func:`write_atomic`: a unique temporary per call, fsynced, then
    renamed over ``path``; readers see the previous file or the new one, the last of
    concurrent writers wins, and a failed or killed save leaves the previous file intact."""
    write_atomic(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise TrainingError(f"checkpoint not found: {p}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainingError(f"cannot read checkpoint {p}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{p} is not a nearpos checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def run_state(
    parts: RunParts,
    prog: Progress,
    step: int,
    sampler: dict[str, torch.Tensor],
    ranks: list[dict[str, torch.Tensor]] | None = None,
) -> dict[str, Any]:
    """Everything needed to go on after ``step`` exactly as if never stopped; in a
    distributed run (``ranks``: every rank's random generator states, rank order) for every
    rank, with the world size it needs."""
    extra: dict[str, Any] = {}
    if ranks is not None:
        extra = {"world_size": len(ranks), "rank_rng": ranks}
    return extra | {
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "model_spec": parts.spec,
        "in_features": parts.in_features,
        "model": parts.model.state_dict(),
        "loss": parts.loss_fn.state_dict(),
        "optimizer": parts.opt.state_dict(),
        "sampler": sampler,
        "rng": _rng_state(parts.aug, parts.cuda),
        "losses": torch.tensor(prog.losses, dtype=torch.float64),
        "history": prog.history,
        "epoch_loss_sum": prog.epoch_sum,
        "best": None if prog.best is None else prog.best.state(),
    }


def resume(path: str, parts: RunParts, steps: int, rank: int = 0, world: int = 1) -> Progress:
    """Load the checkpoint at ``path`` (the config's ``resume_from``) into ``parts``, as
    process ``rank`` of ``world`` (the world size must be the checkpoint's)."""
    try:
        st = load_checkpoint(path)
    except TrainingError as exc:  # the config names a file that is not a checkpoint
        raise ConfigError(f"resume_from: {exc}") from exc
    if st["model_spec"] != parts.spec or int(st["in_features"]) != parts.in_features:
        raise ConfigError(
            f"resume_from: checkpoint {path} holds model {st['model_spec']} "
            f"({st['in_features']} inputs), the config asks for {parts.spec} "
            f"({parts.in_features})"
        )
    written_by = int(st.get("world_size", 1))
    if written_by != world:
        raise ConfigError(
            f"resume_from: checkpoint {path} was written by {written_by} process(es); resume "
            f"it with as many (distributed.nproc_per_node x nnodes), not {world}"
        )
    parts.model.load_state_dict(st["model"])
    parts.loss_fn.load_state_dict(st["loss"])
    parts.opt.load_state_dict(st["optimizer"])
    parts.sampler.load_state_dict(st["sampler"])
    parts.aug.set_state(st["rng"]["augment"])
    if world > 1:
        own = st["rank_rng"][rank]
        torch.set_rng_state(own["torch"])
        if parts.cuda and "cuda" in own:
            torch.cuda.set_rng_state(own["cuda"], parts.device)
    else:
        torch.set_rng_state(st["rng"]["torch"])
        if parts.cuda and "cuda" in st["rng"]:
            torch.cuda.set_rng_state_all(list(st["rng"]["cuda"]))
    start = int(st["step"])
    prog = Progress(
        start=start,
        step=start,
        losses=[float(v) for v in st["losses"].tolist()],
        history=list(st["history"]),
        epoch_sum=float(st["epoch_loss_sum"]),
        best=None if st.get("best") is None else Best.from_state(st["best"]),
    )
    if start >= steps:
        raise ConfigError(
            f"resume_from, steps: checkpoint {path} is at step {start}; "
            f"steps = {steps} leaves nothing to do"
        )
    return prog


def _rng_state(aug: torch.Generator, cuda: bool) -> dict[str, Any]:
    state: dict[str, Any] = {"augment": aug.get_state(), "torch": torch.get_rng_state()}
    if cuda:
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state
