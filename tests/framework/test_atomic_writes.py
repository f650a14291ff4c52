"""Atomically written files look like plainly written ones: complete or absent, and the umask's
mode (readable by the group and others under the usual 022, private under 077)."""

import os
import stat

import pytest
import torch
from safetensors.torch import save_file

from vrpsam.artifacts.atomic import atomic_write, atomic_write_text


@pytest.fixture
def umask():
    """``umask(value)`` sets the process umask for this test; the old one comes back after."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077], ids=["022", "002", "077"])
def test_atomic_files_get_the_mode_a_plain_write_gives(tmp_path, umask, mask):
    umask(mask)
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    assert mode(plain) == 0o666 & ~mask
    # safetensors writes through a private temporary file of its own (0600) and renames it.
    tensors = {"a": torch.zeros(2)}
    weights = atomic_write(tmp_path / "w.safetensors", lambda tmp: save_file(tensors, str(tmp)))
    text = atomic_write_text(tmp_path / "t.json", "{}")
    assert mode(weights) == mode(text) == mode(plain)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.bin", "t.json", "w.safetensors"]
