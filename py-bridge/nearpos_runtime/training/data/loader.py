"""Image batches through torch's DataLoader: decoding and augmentation off the training
thread (``workers`` processes), pinned memory and prefetch for CUDA.

The P x K sampler runs in the training process, as the DataLoader's ``batch_sampler``:
batches come in the sampler's order for any number of workers. Each index travels with
its draw number, from which the worker seeds that sample's augmentation, so a batch's
tensors are the same whichever process decoded them (bitwise). A file that cannot be read
comes back from the worker as a :class:`_Failed` marker and is raised in the training
process as a DataError naming the file.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from .base import DataError
from .transforms import augment_generator, eval_transform, read_image, train_transform

if TYPE_CHECKING:
    from ..sampler import BatchSampler


class _Failed:
    """A sample that could not be decoded (crosses the process boundary by pickling)."""

    def __init__(self, message: str) -> None:
        self.message = message


class DecodeSet(Dataset[Any]):
    """Key ``(draw, index)``: the image at ``index``, transformed for training (augmented
    from ``(seed, draw)``) or for evaluation (``draw`` unused)."""

    def __init__(
        self, paths: Sequence[Path], image_size: int, resize: int, train: bool, seed: int
    ) -> None:
        self.paths, self.image_size, self.resize = list(paths), image_size, resize
        self.train, self.seed = train, seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> torch.Tensor | _Failed:
        draw, index = key
        path = self.paths[index]
        try:
            img = read_image(path)
            if self.train:
                return train_transform(img, self.image_size, augment_generator(self.seed, draw))
            return eval_transform(img, self.resize, self.image_size)
        except DataError as exc:
            return _Failed(str(exc))
        except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's
            return _Failed(f"cannot read image {path}: {type(exc).__name__}: {exc}")


def collate(items: list[torch.Tensor | _Failed]) -> torch.Tensor | _Failed:
    for item in items:
        if isinstance(item, _Failed):
            return item
    # default_collate stacks straight into shared memory in a worker: no copy on the way.
    return default_collate(items)  # type: ignore[no-any-return]


def _tensor(out: torch.Tensor | _Failed) -> torch.Tensor:
    if isinstance(out, _Failed):
        raise DataError(out.message)
    return out


class DrawBatches:
    """The DataLoader's ``batch_sampler``: the sampler's batches with each index paired
    with its draw number (batch number x batch size + position). It draws ahead of the
    training step (prefetch); ``drawn`` keeps each batch's indices and the sampler state
    after it until the step takes that batch."""

    def __init__(self, sampler: BatchSampler) -> None:
        self.sampler = sampler
        self.drawn: deque[tuple[torch.Tensor, dict[str, torch.Tensor]]] = deque()

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for idx in self.sampler:
            self.drawn.append((idx, self.sampler.state_dict()))
            # A shard's samples keep their positions in the global batch.
            first = (self.sampler.batches - 1) * self.sampler.batch_size + self.sampler.offset
            yield [(first + j, i) for j, i in enumerate(idx.tolist())]


def _loader(
    dataset: DecodeSet, batches: Any, workers: int, prefetch: int, pin: bool
) -> DataLoader[Any]:
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin,
        prefetch_factor=prefetch if workers else None,
    )


def _shutdown(it: Iterator[Any]) -> None:
    stop = getattr(it, "_shutdown_workers", None)  # multi-process iterators only
    if stop is not None:
        stop()


class LoaderBatches:
    """:class:`~.batches.TrainBatches` of image samples through a DataLoader."""

    def __init__(
        self,
        dataset: DecodeSet,
        sampler: BatchSampler,
        workers: int,
        prefetch: int,
        pin: bool,
    ) -> None:
        self._draws = DrawBatches(sampler)
        self._loader = _loader(dataset, self._draws, workers, prefetch, pin)
        self._it: Iterator[Any] | None = None  # started at the first batch (after a resume)
        self._state = sampler.state_dict()

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._it is None:
            self._it = iter(self._loader)
        out = next(self._it)
        idx, self._state = self._draws.drawn.popleft()
        return idx, _tensor(out)

    def sampler_state(self) -> dict[str, torch.Tensor]:
        return self._state

    def close(self) -> None:
        if self._it is not None:
            _shutdown(self._it)
            self._it = None


def eval_batches(
    dataset: DecodeSet, batch_size: int, workers: int, prefetch: int, pin: bool
) -> Iterator[torch.Tensor]:
    """``dataset``'s images in order, ``batch_size`` at a time."""
    n = len(dataset)
    keys = [[(0, i) for i in range(s, min(s + batch_size, n))] for s in range(0, n, batch_size)]
    it = iter(_loader(dataset, keys, workers, prefetch, pin))
    try:
        for out in it:
            yield _tensor(out)
    finally:
        _shutdown(it)
