"""Official checkpoints: key names from DESIGN §7, strict loading, backbone section."""

import pytest
import torch

from vrpsam import build_vrp_sam, load_official_checkpoint
from vrpsam.modeling.weights import WeightFileError

ATTN = {
    "in_proj_weight": (768, 256),
    "in_proj_bias": (768,),
    "out_proj.weight": (256, 256),
    "out_proj.bias": (256,),
}


def official_learnable_state(mid_channels=1536, seed=0):
    """A synthetic official state dict written from the documented names and shapes."""
    g = torch.Generator().manual_seed(seed)
    state = {
        "module.downsample_query.0.weight": torch.randn(256, mid_channels, 1, 1, generator=g),
        "module.merge_1.0.weight": torch.randn(256, 513, 1, 1, generator=g),
        "module.transformer_decoder.supp_q_feat.weight": torch.randn(50, 256, generator=g),
    }
    blocks = {
        "transformer_cross_attention_layers_0.0": "multihead_attn",
        "transformer_self_attention_layers_0.0": "self_attn",
        "transformer_cross_attention_layers.0": "multihead_attn",
        "transformer_self_attention_layers.0": "self_attn",
    }
    for block, attn in blocks.items():
        for name, shape in ATTN.items():
            state[f"module.transformer_decoder.{block}.{attn}.{name}"] = torch.randn(
                shape, generator=g
            )
        state[f"module.transformer_decoder.{block}.norm.weight"] = torch.randn(256, generator=g)
        state[f"module.transformer_decoder.{block}.norm.bias"] = torch.randn(256, generator=g)
    return state


def test_official_learnable_weights_land_in_the_right_places(tmp_path):
    state = official_learnable_state()
    path = tmp_path / "best_model.pt"
    torch.save(state, path)
    model = load_official_checkpoint(path, backbone="resnet50", sam="tiny")
    enc = model.encoder
    assert torch.equal(enc.reduce[0].weight, state["module.downsample_query.0.weight"])
    assert torch.equal(enc.queries.weight, state["module.transformer_decoder.supp_q_feat.weight"])
    prefix = "module.transformer_decoder."
    pairs = {
        "transformer_cross_attention_layers_0.0.multihead_attn": enc.layers[0].reference_cross.attn,
        "transformer_self_attention_layers_0.0.self_attn": enc.layers[0].reference_self.attn,
        "transformer_cross_attention_layers.0.multihead_attn": enc.layers[0].target_cross.attn,
        "transformer_self_attention_layers.0.self_attn": enc.layers[0].target_self.attn,
    }
    for name, attn in pairs.items():
        assert torch.equal(attn.in_proj_weight, state[f"{prefix}{name}.in_proj_weight"])
        assert torch.equal(attn.out_proj.bias, state[f"{prefix}{name}.out_proj.bias"])
    assert torch.equal(
        enc.layers[0].target_self.norm.weight,
        state[f"{prefix}transformer_self_attention_layers.0.norm.weight"],
    )
    assert model.switches.mask_downsample == "nearest"  # official-compatibility mode


def test_official_backbone_section_seeds_the_deep_stem_resnet(tmp_path):
    donor = build_vrp_sam(backbone="resnet50_deepstem", sam="tiny")
    stem = {"conv1.0": "layer0.0", "conv1.1": "layer0.1", "conv1.3": "layer0.3",
            "conv1.4": "layer0.4", "conv1.6": "layer0.6", "bn1": "layer0.7"}  # fmt: skip
    state = official_learnable_state()
    for key, value in donor.backbone.body.state_dict().items():
        for ours, theirs in stem.items():
            if key.startswith(ours + "."):
                key = theirs + key[len(ours) :]
                break
        state[f"module.{key}"] = value
    path = tmp_path / "best_model.pt"
    torch.save(state, path)
    model = load_official_checkpoint(path, backbone="resnet50_deepstem", sam="tiny")
    for key, value in donor.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key
    with pytest.raises(WeightFileError, match="resnet50_deepstem"):
        load_official_checkpoint(path, backbone="resnet50", sam="tiny")


@pytest.mark.parametrize("problem", ["missing", "unexpected"])
def test_official_checkpoint_with_missing_or_unexpected_keys_is_refused(tmp_path, problem):
    state = official_learnable_state()
    if problem == "missing":
        del state["module.merge_1.0.weight"]
    else:
        state["module.transformer_decoder.transformer_ffn_layers.0.linear1.weight"] = torch.zeros(
            2, 2
        )
    path = tmp_path / "best_model.pt"
    torch.save(state, path)
    with pytest.raises(WeightFileError, match=problem):
        load_official_checkpoint(path, backbone="resnet50", sam="tiny")


def test_vgg_official_checkpoint_needs_the_vgg_backbone(tmp_path):
    path = tmp_path / "best_model.pt"
    torch.save(official_learnable_state(mid_channels=768), path)
    assert (
        load_official_checkpoint(path, backbone="vgg16", sam="tiny").encoder.reduce[0].in_channels
        == 768
    )
    with pytest.raises(WeightFileError, match="other shapes"):
        load_official_checkpoint(path, backbone="resnet50", sam="tiny")
