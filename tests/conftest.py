"""Shared test settings: small thread pools and deterministic seeds."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
