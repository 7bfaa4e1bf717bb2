"""Shared test settings: CUDA tests skip themselves without a device, and the torch thread count fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` (selected with ``pytest -m cuda``) are skipped where CUDA is absent."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """torch at one thread for the test, restored after. The library never sets the count itself; the tests do,
    because on this shared 2-core machine small torch operations run 5-15x slower with two threads, and
    bit-identical resumption holds only at a fixed thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
