"""mine / loss / train estimate their tuples and memory first and refuse what is over the
budget (real runtime process, real plugin, real torch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from nearpos_runtime.client import Client
from nearpos_runtime.methods.budget import (
    DEFAULT_BUDGET,
    Batch,
    Strategy,
    estimate,
    parse_size,
    runtime_budget,
)
from nearpos_runtime.plugins import plugin_index
from nearpos_runtime.testing import RuntimeProcess, spawn_runtime


def error_of(client: Client, method: str, params: dict) -> dict:
    outcome = client.wait(client.submit(method, params), timeout=60)
    assert outcome.terminal is not None
    assert outcome.terminal.msg_type == "error", outcome.terminal.content
    return outcome.terminal.content


def test_mining_40000_points_of_two_labels_is_refused_at_once(client: Client) -> None:
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    err = error_of(
        client,
        "mine",
        {
            "sampler": "nearest-positive",
            "embeddings": torch.randn(40_000, 2, generator=gen),
            "labels": torch.arange(40_000) % 2,
        },
    )
    assert time.perf_counter() - t0 < 10
    assert err["code"] == "invalid_params"
    text = err["evalue"]
    assert "800,000,000 triplets" in text  # the count
    assert "GiB" in text and "over the memory budget of 2.0 GiB" in text  # the estimate
    assert "params.config.negatives='semihard'" in text  # an option that fits
    assert "rows of params.embeddings per call" in text  # a smaller batch that fits
    assert "params.memory_budget" in text
    # The suggestions fit (estimated here: their results are too large for this runtime's
    # 1 MB messages).
    batch = Batch.of(torch.arange(40_000) % 2, 2)
    assert estimate(batch, Strategy(positives="nearest", negatives="semihard")).nbytes < 2**31
    rows = int(text.split("at most ")[1].split(" rows")[0].replace(",", ""))
    assert estimate(batch.scaled(rows), Strategy(positives="nearest")).nbytes <= 2**31
    assert estimate(batch.scaled(rows + 50), Strategy(positives="nearest")).nbytes > 2**31


def test_loss_and_train_are_checked_the_same_way(client: Client) -> None:
    gen = torch.Generator().manual_seed(1)
    err = error_of(
        client,
        "loss",
        {
            "loss": "triplet",
            "sampler": "all-positives",
            "embeddings": torch.randn(2048, 64, generator=gen),
            "labels": torch.arange(2048) % 2,
        },
    )
    assert err["code"] == "invalid_params" and "the loss 'triplet' would produce" in err["evalue"]
    train = {
        "data": {"kind": "synthetic"},
        "model": {"kind": "mlp", "hidden": [16]},
        "batch": {"classes": 2, "per_class": 4096},
        "device": "cpu",
    }
    err = error_of(client, "train", train)
    assert err["code"] == "invalid_params"
    assert "a training step's loss (2 x 4096 batch)" in err["evalue"]
    assert "params.batch.per_class <=" in err["evalue"]
    assert "params.sampler.config.negatives='semihard'" in err["evalue"]


def test_a_per_call_budget_refuses_or_allows(client: Client) -> None:
    gen = torch.Generator().manual_seed(2)
    params = {
        "sampler": "nearest-positive",
        "embeddings": torch.randn(120, 8, generator=gen),
        "labels": torch.arange(120) % 3,
    }
    err = error_of(client, "mine", {**params, "memory_budget": 2**20})
    assert "over the memory budget of 1.0 MiB (params.memory_budget" in err["evalue"]
    value = client.call("mine", {**params, "memory_budget": 2**30})
    assert len(value["indices"]["anchors"]) == 120 * 80  # nearest positive x all negatives


@pytest.fixture
def small_budget_runtime(
    plugin_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RuntimeProcess]:
    monkeypatch.setenv("NEARPOS_MEMORY_BUDGET", "1MiB")
    rt = spawn_runtime(["--workers", "2"], extra_pythonpath=[plugin_dir])
    yield rt
    rt.stop()


def test_the_runtime_budget_comes_from_the_environment(
    small_budget_runtime: RuntimeProcess,
) -> None:
    rt = small_budget_runtime
    with Client(rt.connection, rt.key, timeout=30) as c:
        gen = torch.Generator().manual_seed(3)
        params = {
            "sampler": "nearest-positive",
            "embeddings": torch.randn(120, 8, generator=gen),
            "labels": torch.arange(120) % 3,
        }
        err = error_of(c, "mine", params)
        assert "over the memory budget of 1.0 MiB" in err["evalue"]
        assert len(c.call("mine", {**params, "memory_budget": 2**30})["indices"]["anchors"])


def test_budget_sizes_parse() -> None:
    assert parse_size("2GiB") == 2 * 2**30 == DEFAULT_BUDGET
    assert parse_size("512 MiB") == 512 * 2**20
    assert parse_size("1.5G") == 3 * 2**29
    assert parse_size("1000") == 1000
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")
    assert runtime_budget() in (DEFAULT_BUDGET, parse_size(__import__("os").environ.get(
        "NEARPOS_MEMORY_BUDGET", "2GiB")))


@pytest.mark.parametrize("sampler", ["nearest-positive", "all-positives", "semihard"])
@pytest.mark.parametrize("negatives", ["all", "hardest", "distance-weighted"])
@pytest.mark.parametrize("output", ["triplets", "pairs"])
@pytest.mark.parametrize("with_ref", [False, True])
def test_the_count_is_the_samplers_count(
    sampler: str, negatives: str, output: str, with_ref: bool
) -> None:
    plugin = plugin_index().get(sampler)
    given = {"output": output, "seed": 0}
    if sampler != "semihard":
        given["negatives"] = negatives
    config = plugin.validate_config(given)
    gen = torch.Generator().manual_seed(4)
    labels = torch.tensor([0] * 7 + [1] * 5 + [2] * 3 + [3] * 1)
    emb = torch.randn(len(labels), 6, generator=gen)
    ref: dict = {}
    ref_labels = None
    if with_ref:
        ref_labels = torch.tensor([0] * 4 + [1] * 9 + [4] * 2)
        ref = {"ref_emb": torch.randn(len(ref_labels), 6, generator=gen), "ref_labels": ref_labels}
    out = plugin.obj.miner(given)(emb, labels, **ref)
    got = len(out[0]) if len(out) == 3 else len(out[0]) + len(out[2])
    est = estimate(Batch.of(labels, 6, ref_labels), Strategy.of(plugin.obj, config))
    if negatives == "all" or sampler == "semihard":
        exact = negatives == "all" and sampler != "semihard"
        assert est.tuples == got if exact else est.tuples >= got
    else:
        assert est.tuples >= got  # one negative per row: every row that has one


MEASURE = textwrap.dedent(
    """
    import json, torch
    from nearest_positive.plugin import plugin

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

    n, d, c = 3000, 16, 2
    emb = torch.randn(n, d); labels = torch.arange(n) % c
    miner = plugin.miner({})
    miner(emb[:64], labels[:64])
    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current size
    out = miner(emb, labels)
    print(json.dumps({"tuples": len(out[0]), "bytes": status("VmHWM") - before}))
    """
)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_the_estimate_covers_the_measured_peak() -> None:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(2**20)}  # big blocks back to the OS
    run = subprocess.run(
        [sys.executable, "-c", MEASURE],
        capture_output=True, text=True, check=True, timeout=120, env=env,
    )
    measured = json.loads(run.stdout.strip().splitlines()[-1])
    labels = torch.arange(3000) % 2
    est = estimate(Batch.of(labels, 16), Strategy(positives="nearest"))
    assert est.tuples == measured["tuples"] == 3000 * 1500
    assert 50 * 2**20 < measured["bytes"] <= est.nbytes <= 4 * measured["bytes"] + 64 * 2**20
