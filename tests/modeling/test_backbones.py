"""Frozen backbones: shapes, freezing, and the weight-file layouts users have."""

import pytest
import torch

from vrpsam.modeling.backbones import build_backbone
from vrpsam.modeling.weights import WeightFileError


@pytest.mark.parametrize(
    ("name", "mid", "high", "grid"),
    [("resnet50", 1536, 2048, 16), ("resnet18", 384, 512, 16), ("vgg16", 768, 512, 8)],
)
def test_mid_and_high_features_at_the_documented_strides(name, mid, high, grid):
    backbone = build_backbone(name)
    with torch.no_grad():
        mid_feats, pre_high = backbone.mid(torch.randn(1, 3, 128, 128))
        high_feats = backbone.high(pre_high)
    assert mid_feats.shape == (1, mid, grid, grid) and backbone.mid_channels == mid
    assert high_feats.shape == (1, high, grid, grid) and backbone.high_channels == high


def test_dinov2_mid_blocks_and_high_block_on_a_37x37_grid():
    backbone = build_backbone("dinov2_vitb14", embed_dim=48, num_heads=2)
    with torch.no_grad():
        mid, pre_high = backbone.mid(torch.randn(1, 3, 64, 64))
    assert mid.shape == (1, 96, 37, 37)  # blocks 6 and 9 concatenated
    assert backbone.high(pre_high).shape == (1, 48, 37, 37)
    assert not backbone.masks_before_high


def test_backbone_stays_frozen_under_a_parent_train_call():
    backbone = build_backbone("resnet18")
    parent = torch.nn.Sequential(backbone)
    parent.train()
    assert not any(m.training for m in backbone.modules())
    assert all(not p.requires_grad for p in backbone.parameters())


def test_high_stage_sees_the_masked_pre_high_features():
    backbone = build_backbone("resnet18")
    with torch.no_grad():
        _, pre_high = backbone.mid(torch.randn(1, 3, 64, 64))
        zero_mask = torch.zeros(1, 1, *pre_high.shape[-2:])
        masked = backbone.high(pre_high, zero_mask)
        expected = backbone.high(torch.zeros_like(pre_high))
    torch.testing.assert_close(masked, expected)


def test_torchvision_resnet50_weights_load(tmp_path):
    from torchvision.models import resnet50

    source = resnet50()
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(source.state_dict(), path)
    backbone = build_backbone("resnet50", checkpoint=path)
    assert torch.equal(backbone.body.layer4[2].conv3.weight, source.layer4[2].conv3.weight)


def test_pspnet_deep_stem_resnet50_v2_layout_loads(tmp_path):
    donor = build_backbone("resnet50_deepstem")
    timm_state = {k[len("body.") :]: v.clone() for k, v in donor.state_dict().items()}
    stem = {"conv1.0": "conv1", "conv1.1": "bn1", "conv1.3": "conv2", "conv1.4": "bn2",
            "conv1.6": "conv3", "bn1": "bn3"}  # fmt: skip
    pspnet = {}
    for key, value in timm_state.items():
        for ours, theirs in stem.items():
            if key.startswith(ours + "."):
                key = theirs + key[len(ours) :]
                break
        pspnet[key] = value
    pspnet["fc.weight"] = torch.zeros(1000, 2048)  # classifier heads are dropped
    path = tmp_path / "resnet50_v2.pth"
    torch.save(pspnet, path)
    torch.manual_seed(123)
    backbone = build_backbone("resnet50_deepstem", checkpoint=path)
    for key, value in donor.state_dict().items():
        assert torch.equal(backbone.state_dict()[key], value), key


def test_torchvision_vgg16_bn_weights_load(tmp_path):
    from torchvision.models import vgg16_bn

    source = vgg16_bn()
    path = tmp_path / "vgg16_bn.pth"
    torch.save(source.state_dict(), path)
    backbone = build_backbone("vgg16", checkpoint=path)
    assert torch.equal(backbone.stages[4][0].weight, source.features[34].weight)


def test_missing_backbone_file_names_file_source_and_config_key(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        build_backbone("resnet50_deepstem", checkpoint=tmp_path / "resnet50_v2.pth")
    message = str(info.value)
    assert (
        "resnet50_v2.pth" in message
        and "model.backbone_checkpoint" in message
        and "PSPNet" in message
    )


def test_weights_of_another_architecture_are_refused(tmp_path):
    from torchvision.models import resnet18

    path = tmp_path / "resnet18.pth"
    torch.save(resnet18().state_dict(), path)
    with pytest.raises(WeightFileError, match="other shapes"):
        build_backbone("resnet50", checkpoint=path)
