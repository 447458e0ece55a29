"""Row-tile sizing: the only B x M-shaped memory is one tile of scores and its mask."""

from __future__ import annotations

from collections.abc import Iterator

import torch

#: Scratch budget for one tile (bytes). At M = 8192: 768-row score tiles on the per-class
#: matmul path, 512 rows where a bool mask goes with them (negatives). From
#: benchmarks/perf/mining --tile-sweep 8192: 128 to 768 rows within the noise, 64 slower;
#: peak memory grows linearly above 512 rows.
TILE_BUDGET_BYTES = 24 * 2**20
MIN_TILE_ROWS = 32


def tile_rows(
    n_rows: int, n_refs: int, tile_size: int | None, elem_bytes: int = 4, mask: bool = True
) -> int:
    """Anchor rows per tile: `tile_size` if given, else what fits TILE_BUDGET_BYTES."""
    if tile_size is not None:
        return max(1, min(tile_size, max(n_rows, 1)))
    # scores (elem_bytes) + one bool mask + slack for the argmin/gather temporaries
    per_row = max(n_refs, 1) * (elem_bytes + (2 if mask else 0))
    rows = max(MIN_TILE_ROWS, TILE_BUDGET_BYTES // per_row)
    return max(1, min(rows, max(n_rows, 1)))


def tiles(n_rows: int, rows: int, device: torch.device) -> Iterator[torch.Tensor]:
    for s in range(0, n_rows, rows):
        yield torch.arange(s, min(s + rows, n_rows), device=device)
