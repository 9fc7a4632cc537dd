"""Test isolation: a private VLADV_HOME per session, no hub access, a fresh plugin registry."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tests use tiny tensors: one thread avoids oversubscription on small shared CPUs.
torch.set_num_threads(1)
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def _vladv_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("vladv_home")
    old = os.environ.get("VLADV_HOME")
    os.environ["VLADV_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("VLADV_HOME", None)
    else:
        os.environ["VLADV_HOME"] = old


@pytest.fixture
def tiny():
    """Register the tiny backbone and dataset of vladv.testing for one test."""
    from vladv.testing import registered_plugin, tiny_plugin

    with registered_plugin(tiny_plugin) as registry:
        yield registry
