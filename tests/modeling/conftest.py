import pytest
import torch

from vrpsam import build_vrp_sam


@pytest.fixture(scope="module")
def small_model():
    """ResNet-18 + tiny SAM: the cheapest real composition, for behaviour tests at 128 px."""
    torch.manual_seed(0)
    return build_vrp_sam(backbone="resnet18", sam="tiny", sam_kwargs={"image_size": 128})


@pytest.fixture
def make_episode():
    """Random images and a square reference mask: (targets, references, masks)."""

    def make(batch=1, shots=1, size=128, box=(30, 90)):
        targets = torch.randn(batch, 3, size, size)
        references = torch.randn(batch, shots, 3, size, size)
        masks = torch.zeros(batch, shots, size, size)
        masks[..., box[0] : box[1], box[0] : box[1]] = 1
        return targets, references, masks

    return make
