"""Shared fixtures: a real runtime process with a real test plugin installed next to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nearpos_runtime.client import Client
from nearpos_runtime.testing import RuntimeProcess, install_plugin_dir, spawn_runtime

FIXTURES = Path(__file__).parent / "fixtures"
TEST_ENTRY_POINTS = {
    "np-test": "nptestplug.plugin:plugin",
    "np-broken": "nptestplug.broken:plugin",
}


@pytest.fixture(scope="session")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_plugin_dir(
        FIXTURES / "nptestplug", tmp_path_factory.mktemp("plugins"), "nptestplug",
        TEST_ENTRY_POINTS,
    )


@pytest.fixture(scope="module")
def runtime(plugin_dir: Path) -> Iterator[RuntimeProcess]:
    rt = spawn_runtime(
        ["--workers", "4", "--max-message-bytes", "1000000"], extra_pythonpath=[plugin_dir]
    )
    yield rt
    rt.stop()


@pytest.fixture
def client(runtime: RuntimeProcess) -> Iterator[Client]:
    with Client(runtime.connection, runtime.key, timeout=20) as c:
        yield c
