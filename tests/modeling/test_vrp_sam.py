"""The composed model: public API shapes, parameter counts, what trains and what stays frozen."""

import pytest
import torch

from vrpsam import EmptyReferenceError, build_vrp_sam
from vrpsam.engine.losses import bce_dice_loss


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.fixture(scope="module")
def resnet50_model():
    return build_vrp_sam(backbone="resnet50", sam="tiny")


def test_resnet50_learnable_part_has_the_papers_1592064_parameters(resnet50_model):
    assert trainable(resnet50_model) == 1_592_064
    assert all(not p.requires_grad for p in resnet50_model.backbone.parameters())
    assert all(not p.requires_grad for p in resnet50_model.sam.parameters())


def test_vgg16_learnable_part_has_1395456_parameters():
    assert trainable(build_vrp_sam(backbone="vgg16", sam="tiny")) == 1_395_456


# The paper's 512 px costs seconds of ResNet-50 on a CPU (slow); 128 px takes the same path.
@pytest.mark.parametrize("size", [128, pytest.param(512, marks=pytest.mark.slow)])
def test_public_api_shapes(resnet50_model, size):
    targets = torch.randn(1, 3, size, size)
    references = torch.randn(1, 1, 3, size, size)
    masks = torch.zeros(1, 1, size, size)
    masks[..., size * 2 // 5 : size * 3 // 5, size * 3 // 10 : size * 7 // 10] = 1
    resnet50_model.eval()
    with torch.no_grad():
        prompts = resnet50_model.prompt_embeddings(targets, references, masks)
        logits = resnet50_model(targets, references, masks)
    assert prompts.shape == (1, 50, 256)
    assert logits.shape == (1, 1, size, size)


def test_k_shot_gives_k_times_50_tokens(small_model, make_episode):
    targets, references, masks = make_episode(batch=2, shots=3)
    with torch.no_grad():
        prompts = small_model.prompt_embeddings(targets, references, masks)
    assert prompts.shape == (2, 150, 256)


def test_frozen_parts_stay_in_eval_mode_and_get_no_gradient(small_model, make_episode):
    small_model.train()
    assert small_model.encoder.training
    assert not any(m.training for m in small_model.backbone.modules())
    assert not any(m.training for m in small_model.sam.modules())
    targets, references, masks = make_episode(batch=2)
    target_masks = torch.zeros(2, 128, 128, dtype=torch.long)
    target_masks[:, 20:60, 20:60] = 1
    small_model.zero_grad()
    loss = bce_dice_loss(small_model(targets, references, masks), target_masks)["loss"]
    loss.backward()
    frozen = [*small_model.backbone.parameters(), *small_model.sam.parameters()]
    assert all(p.grad is None for p in frozen)
    for name, p in small_model.encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"
    small_model.eval()


def test_batch_elements_are_independent(small_model, make_episode):
    """Batched decoding must not mix images (the released decoder's B×B pitfall)."""
    small_model.eval()
    targets, references, masks = make_episode(batch=3)
    with torch.no_grad():
        batched = small_model(targets, references, masks)
        single = torch.cat(
            [
                small_model(targets[i : i + 1], references[i : i + 1], masks[i : i + 1])
                for i in range(3)
            ]
        )
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4)


def test_reference_state_reused_gives_the_same_prompts(small_model, make_episode):
    small_model.eval()
    targets, references, masks = make_episode(batch=1, shots=2)
    with torch.no_grad():
        direct = small_model.prompt_embeddings(targets, references, masks)
        state = small_model.reference_state(references, masks)
        reused = small_model.prompts_from_reference(state, targets, shots=2)
    torch.testing.assert_close(direct, reused)


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ("empty", EmptyReferenceError, "empty"),
        ("not_binary", ValueError, "binary"),
        ("mask_size", ValueError, "differs"),
        ("channels", ValueError, "3 channels"),
        ("batch", ValueError, "mismatch"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_message(
    small_model, make_episode, change, error, words
):
    targets, references, masks = make_episode()
    if change == "empty":
        masks.zero_()
    elif change == "not_binary":
        masks[..., :5, :5] = 255
    elif change == "mask_size":
        masks = masks[..., :64, :64]
    elif change == "channels":
        references = references[:, :, :1]
    elif change == "batch":
        targets = torch.cat([targets, targets])
    with pytest.raises(error, match=words):
        small_model(targets, references, masks)


@pytest.mark.parametrize(("backbone", "sam"), [("resnet34", "tiny"), ("resnet50", "vit_xl")])
def test_unknown_names_list_the_choices(backbone, sam):
    with pytest.raises(ValueError, match="choose one of"):
        build_vrp_sam(backbone=backbone, sam=sam)


def test_official_compat_switches_every_official_model_behaviour_at_once():
    model = build_vrp_sam(
        backbone="resnet18", sam="tiny", official_compat=True, sam_kwargs={"image_size": 128}
    )
    assert model.switches.mask_downsample == "nearest"
    assert model.sam.preprocess == "squash" and model.sam.align_corners
    assert not model.switches.pseudo_mask_minmax
    # The run's other switches (loss, sampling, scoring, selection) are the protocol's.
    assert model.build_spec["mask_downsample"] == "nearest"
    assert model.build_spec["sam_preprocess"] == "squash"
    explicit = build_vrp_sam(
        backbone="resnet18",
        sam="tiny",
        official_compat=True,
        mask_downsample="max",
        sam_kwargs={"image_size": 128},
    )
    assert explicit.switches.mask_downsample == "max"


def test_random_frozen_weights_do_not_depend_on_the_global_rng():
    torch.manual_seed(1)
    a = build_vrp_sam(backbone="resnet18", sam="tiny", sam_kwargs={"image_size": 128})
    torch.manual_seed(2)
    b = build_vrp_sam(backbone="resnet18", sam="tiny", sam_kwargs={"image_size": 128})
    for key, value in a.state_dict().items():
        if not key.startswith("encoder."):
            assert torch.equal(value, b.state_dict()[key]), key
    other = b.state_dict()
    encoders = [(v, other[k]) for k, v in a.state_dict().items() if k.startswith("encoder.")]
    assert any(not torch.equal(x, y) for x, y in encoders), "the encoder follows the run's seed"
