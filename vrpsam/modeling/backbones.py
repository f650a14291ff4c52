"""Frozen feature extractors feeding the VRP encoder.

Every backbone splits into two stages, because the reference's high-level features are computed on
its *masked* pre-high features (PFENet's trick, kept by VRP-SAM):

* :meth:`FrozenBackbone.mid` → ``(mid, pre_high)``: the "mid-level" features the feature augmenter
  reduces (ResNet: concat(layer2, layer3)), and the input of the high stage;
* :meth:`FrozenBackbone.high` → the "high-level" features used only for the pseudo-mask (ResNet:
  layer4 applied to ``pre_high``, optionally multiplied by the reference mask first).

Which layers are mid and high:

============================  ==========================================  =========================
backbone                      mid (channels)                              high (channels)
============================  ==========================================  =========================
``resnet50``                  layer2 ⊕ layer3, stride 8 (1536)             layer4, stride 8 (2048)
``resnet50_deepstem``         same, PSPNet deep stem (official weights)   same
``resnet18``                  layer2 ⊕ layer3, stride 8 (384)              layer4, stride 8 (512)
``vgg16``                     conv3 (256, stride 8, resized) ⊕ conv4       conv5 block (512)
                              (512, stride 16) = 768 at stride 16
``dinov2_vitb14``             blocks 6 ⊕ 9 (1-indexed) of 12 (1536)        block 12 (768)
============================  ==========================================  =========================

DINOv2 has no convolutional high stage to feed masked features into, so its reference high
features are the plain block-12 tokens; the pseudo-mask masks them afterwards (the same rule the
VRP encoder applies to every backbone). ``resnet18`` is not in the paper; the demo uses it as a
small stand-in.

All backbones are frozen: parameters have ``requires_grad=False`` and the module stays in eval mode
(BatchNorm statistics frozen) even when a parent calls ``.train()``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vrpsam.modeling.weights import WeightFileError, load_strict, read_state_dict


class FrozenBackbone(nn.Module):
    """Base class: a frozen two-stage feature extractor.

    Attributes:
        mid_channels: channels of :meth:`mid`'s first output.
        high_channels: channels of :meth:`high`'s output.
        masks_before_high: whether :meth:`high` multiplies its input by the reference mask
            (PFENet's trick); when False the caller masks the high features afterwards.
    """

    mid_channels: int
    high_channels: int
    masks_before_high: bool = True

    def freeze(self) -> FrozenBackbone:
        self.requires_grad_(False)
        return self.train(False)

    def train(self, mode: bool = True) -> FrozenBackbone:
        # Frozen means frozen BatchNorm statistics too, whatever the parent module asks for.
        return super().train(False)

    def mid(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: images (B, 3, H, W), ImageNet-normalised.

        Returns:
            mid (B, mid_channels, h, w) and pre_high (B, C, h', w'), the input of :meth:`high`.
        """
        raise NotImplementedError

    def high(self, pre_high: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Args:
            pre_high: (B, C, h', w') from :meth:`mid`.
            mask: optional (B, 1, h', w') reference mask, applied before the high stage when
                :attr:`masks_before_high` is True, ignored otherwise.

        Returns:
            (B, high_channels, h'', w'') high-level features.
        """
        raise NotImplementedError


class ResNetBackbone(FrozenBackbone):
    """ResNet at output stride 8 (dilated layer3/layer4) through timm ``features_only``."""

    def __init__(self, *, model_name: str, **timm_kwargs) -> None:
        super().__init__()
        import timm

        body = timm.create_model(
            model_name,
            pretrained=False,
            features_only=True,
            out_indices=(2, 3, 4),
            output_stride=8,
            **timm_kwargs,
        )
        channels = body.feature_info.channels()
        self.body = body
        self.mid_channels = channels[0] + channels[1]
        self.high_channels = channels[2]
        self.freeze()

    def mid(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images
        for name, module in self.body.items():
            if name == "layer4":
                break
            x = module(x)
            if name == "layer2":
                layer2 = x
        return torch.cat([layer2, x], dim=1), x

    def high(self, pre_high: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            pre_high = pre_high * mask
        return self.body.layer4(pre_high)


class VGGBackbone(FrozenBackbone):
    """VGG-16-bn split as PFENet/VRP-SAM split it (torchvision layout, so its weight files load)."""

    # Slices of torchvision's vgg16_bn.features: stem+conv1 / conv2 / conv3 (stride 8) /
    # conv4 (stride 16) / conv5 without its final pool (stride 16).
    STAGES = ((0, 7), (7, 14), (14, 24), (24, 34), (34, 43))

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import vgg16_bn

        features = vgg16_bn(weights=None).features
        self.stages = nn.ModuleList(nn.Sequential(*features[a:b]) for a, b in self.STAGES)
        self.mid_channels = 256 + 512
        self.high_channels = 512
        self.freeze()

    def mid(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stages[1](self.stages[0](images))
        conv3 = self.stages[2](x)
        conv4 = self.stages[3](conv3)
        conv3 = F.interpolate(conv3, size=conv4.shape[-2:], mode="bilinear", align_corners=True)
        return torch.cat([conv3, conv4], dim=1), conv4

    def high(self, pre_high: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            pre_high = pre_high * mask
        return self.stages[4](pre_high)


class DinoV2Backbone(FrozenBackbone):
    """DINOv2 ViT through timm; images are resized to a multiple of the patch size."""

    masks_before_high = False

    def __init__(
        self,
        *,
        model_name: str = "vit_base_patch14_dinov2",
        mid_blocks: tuple[int, ...] = (5, 8),
        high_block: int = 11,
        input_size: int = 518,
        **timm_kwargs,
    ) -> None:
        super().__init__()
        import timm

        self.vit = timm.create_model(
            model_name, pretrained=False, num_classes=0, dynamic_img_size=True, **timm_kwargs
        )
        self.mid_blocks = tuple(mid_blocks)
        self.high_block = high_block
        self.input_size = input_size
        self.patch_size = self.vit.patch_embed.patch_size[0]
        if input_size % self.patch_size:
            raise ValueError(f"input_size {input_size} is not a multiple of the patch size")
        self.mid_channels = self.vit.embed_dim * len(self.mid_blocks)
        self.high_channels = self.vit.embed_dim
        self.freeze()

    def mid(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = (self.input_size, self.input_size)
        if images.shape[-2:] != size:
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        # Pre-norm patch tokens as (B, C, h, w) maps; the high block's tokens serve as pre_high.
        feats = self.vit.forward_intermediates(
            images,
            indices=[*self.mid_blocks, self.high_block],
            norm=False,
            output_fmt="NCHW",
            intermediates_only=True,
        )
        return torch.cat(feats[:-1], dim=1), feats[-1]

    def high(self, pre_high: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return pre_high


# --- weight-file adapters: map the layouts users have onto our modules -------------------------


def resnet_state_to_timm(state: dict, *, deep_stem: bool) -> dict:
    """Accept timm, torchvision, PSPNet ``resnet50_v2.pth`` and official VRP-SAM layouts."""
    pspnet_stem = {"conv1": "conv1.0", "bn1": "conv1.1", "conv2": "conv1.3", "bn2": "conv1.4",
                   "conv3": "conv1.6", "bn3": "bn1"}  # fmt: skip
    official_stem = {"layer0.0": "conv1.0", "layer0.1": "conv1.1", "layer0.3": "conv1.3",
                     "layer0.4": "conv1.4", "layer0.6": "conv1.6", "layer0.7": "bn1"}  # fmt: skip
    out = {}
    is_pspnet = deep_stem and "conv2.weight" in state and "conv1.weight" in state
    for key, value in state.items():
        if key.startswith("fc."):
            continue  # classifier head: not part of a feature extractor
        head, _, rest = key.partition(".")
        two = ".".join(key.split(".")[:2])
        if deep_stem and two in official_stem:
            key = official_stem[two] + key[len(two) :]
        elif is_pspnet and head in pspnet_stem:
            key = f"{pspnet_stem[head]}.{rest}"
        out[key] = value
    return out


def vgg_state_to_ours(state: dict) -> dict:
    """Accept torchvision ``features.N`` keys and official ``layerK.M`` keys."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "features":
            index = int(parts[1])
        elif parts[0].startswith("layer") and parts[0][5:].isdigit():
            index = VGGBackbone.STAGES[int(parts[0][5:])][0] + int(parts[1])
        else:
            continue  # classifier
        stage = next(i for i, (a, b) in enumerate(VGGBackbone.STAGES) if a <= index < b)
        local = index - VGGBackbone.STAGES[stage][0]
        out[f"stages.{stage}.{local}." + ".".join(parts[2:])] = value
    return out


def _dinov2_state(state: dict, model: DinoV2Backbone) -> dict:
    """Accept the facebookresearch ``dinov2_vit*14_pretrain.pth`` layout or timm's."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    state = {k[len("vit.") :] if k.startswith("vit.") else k: v for k, v in state.items()}
    state = checkpoint_filter_fn(state, model.vit)
    return {f"vit.{k}": v for k, v in state.items()}


# --- registry ----------------------------------------------------------------------------------

WEIGHT_SOURCES = {
    "resnet50": "torchvision (resnet50-*.pth) or timm (resnet50 .safetensors) ImageNet weights",
    "resnet50_deepstem": "the PSPNet/PFENet `resnet50_v2.pth` (initmodel/) or an official "
    "VRP-SAM checkpoint's backbone",
    "resnet18": "torchvision or timm resnet18 ImageNet weights, or the demo's stand-in",
    "vgg16": "torchvision vgg16_bn-*.pth or PFENet's `vgg16_bn.pth`",
    "dinov2_vitb14": "facebookresearch/dinov2 `dinov2_vitb14_pretrain.pth` or timm's "
    "vit_base_patch14_dinov2 weights",
}


def _resnet50(**kw) -> FrozenBackbone:
    return ResNetBackbone(model_name="resnet50", **kw)


def _resnet50_deepstem(**kw) -> FrozenBackbone:
    # timm's resnet50s has the PSPNet deep stem (3x3 convs 64-64-128).
    return ResNetBackbone(model_name="resnet50s", **kw)


def _resnet18(**kw) -> FrozenBackbone:
    return ResNetBackbone(model_name="resnet18", **kw)


def _vgg16(**kw) -> FrozenBackbone:
    return VGGBackbone(**kw)


def _dinov2_vitb14(**kw) -> FrozenBackbone:
    return DinoV2Backbone(model_name="vit_base_patch14_dinov2", **kw)


BACKBONES: dict[str, Callable[..., FrozenBackbone]] = {
    "resnet50": _resnet50,
    "resnet50_deepstem": _resnet50_deepstem,
    "resnet18": _resnet18,
    "vgg16": _vgg16,
    "dinov2_vitb14": _dinov2_vitb14,
}


def build_backbone(name: str, *, checkpoint: str | Path | None = None, **kwargs) -> FrozenBackbone:
    """Build a frozen backbone, with random weights or weights from a local file.

    Args:
        name: one of :data:`BACKBONES`.
        checkpoint: local weight file; None builds random weights and reads no file.
        **kwargs: passed to the backbone's constructor (sizes, e.g. a smaller ViT for tests).

    Raises:
        ValueError: unknown name.
        FileNotFoundError: missing checkpoint file (naming the file, its source, the config key).
        WeightFileError: a file whose keys or shapes do not fit.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    model = BACKBONES[name](**kwargs)
    if checkpoint is not None:
        load_backbone_weights(model, name, checkpoint)
    return model


def load_backbone_weights(model: FrozenBackbone, name: str, checkpoint: str | Path) -> None:
    """Load a weight file in any of the layouts the registry documents into ``model``."""
    what = f"{name} backbone weights"
    state = read_state_dict(
        checkpoint, what=what, source=WEIGHT_SOURCES[name], config_key="model.backbone_checkpoint"
    )
    if isinstance(model, ResNetBackbone):
        state = {
            f"body.{k}": v
            for k, v in resnet_state_to_timm(state, deep_stem=name.endswith("deepstem")).items()
        }
    elif isinstance(model, VGGBackbone):
        state = vgg_state_to_ours(state)
    elif isinstance(model, DinoV2Backbone):
        state = _dinov2_state(state, model)
    try:
        load_strict(model, state, what=f"{what} from {checkpoint}")
    except WeightFileError as err:
        raise WeightFileError(f"{err} Is this file really {WEIGHT_SOURCES[name]}?") from None
    model.freeze()
