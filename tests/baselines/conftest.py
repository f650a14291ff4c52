"""Shared fixtures of the baseline tests: tiny frozen models and synthetic episodes."""

import pytest
import torch

from vrpsam.baselines.base import EpisodeInput
from vrpsam.modeling.backbones import build_backbone
from vrpsam.modeling.sam import build_sam


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # The baselines run many small ops (SAM decodes of a few tokens): on a small busy machine
    # several OpenMP threads contend for them, so one thread runs them much faster.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_sam():
    """A tiny SAM at 128 px (16×16 embedding grid), random weights."""
    torch.manual_seed(0)
    return build_sam("tiny", image_size=128, patch_size=8, window_size=8)


@pytest.fixture(scope="session")
def resnet18():
    """A random-weight ResNet-18 backbone (the cheapest real one)."""
    torch.manual_seed(0)
    return build_backbone("resnet18")


def _annotation(kind: str, size: int, box: tuple[int, int]) -> torch.Tensor:
    """A (size, size) annotation of the square object [box[0], box[1])² of the given kind."""
    lo, hi = box
    mask = torch.zeros(size, size)
    if kind in ("mask", "box"):  # the object is a square: its tight box is itself
        mask[lo:hi, lo:hi] = 1
    elif kind == "point":
        for x, y in ((lo + 3, lo + 5), (hi - 4, lo + 9), ((lo + hi) // 2, (lo + hi) // 2)):
            mask[y, x] = 1
    elif kind == "scribble":
        mid = (lo + hi) // 2
        mask[mid - 1 : mid + 1, lo + 2 : hi - 2] = 1
    else:
        mask[lo:hi, lo:hi] = 1  # an unknown kind: the test checks the refusal, not the mask
    return mask


@pytest.fixture
def make_episode():
    """Synthetic episodes: random 3×S×S images, square reference objects."""

    def make(*, shots=1, annotation="mask", seed=0, size=128, box=(30, 90), target_size=None):
        gen = torch.Generator().manual_seed(1000 + seed)
        masks = torch.stack([_annotation(annotation, size, box) for _ in range(shots)])
        return EpisodeInput(
            target_image=torch.randn(3, size, size, generator=gen),
            target_size=target_size or (size, size),
            reference_images=torch.randn(shots, 3, size, size, generator=gen),
            reference_masks=masks,
            annotation=annotation,
            seed=seed,
        )

    return make
