"""Frozen SAM: variants, checkpoint checks, batched decoding, preprocessing."""

import pytest
import torch

from vrpsam.modeling.sam import build_sam, identify_sam_variant
from vrpsam.modeling.weights import WeightFileError


@pytest.fixture(scope="module")
def tiny():
    return build_sam("tiny", image_size=128)


def test_batched_decode_equals_per_image_mask_decoder_forward(tiny):
    emb = torch.randn(3, 256, 8, 8)
    prompts = torch.randn(3, 50, 256)
    decoder = tiny.sam.mask_decoder
    for multimask in (False, True):
        low, iou = tiny.decode(emb, prompts, multimask_output=multimask)
        for i in range(3):
            ref_low, ref_iou = decoder(
                image_embeddings=emb[i : i + 1],
                image_pe=tiny.sam.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=prompts[i : i + 1],
                dense_prompt_embeddings=tiny.dense_prompt(1),
                multimask_output=multimask,
            )
            torch.testing.assert_close(low[i : i + 1], ref_low, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(iou[i : i + 1], ref_iou, atol=1e-5, rtol=1e-5)


def test_decode_keeps_the_graph_to_the_prompts(tiny):
    prompts = torch.randn(2, 5, 256, requires_grad=True)
    low, _ = tiny.decode(torch.randn(2, 256, 8, 8), prompts)
    low.sum().backward()
    assert prompts.grad is not None and prompts.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny.parameters())


def test_tiny_sam_has_real_size_prompt_encoder_and_decoder(tiny):
    from segment_anything import sam_model_registry

    reference = sam_model_registry["vit_b"]()
    for part in ("prompt_encoder", "mask_decoder"):
        ours = {k: v.shape for k, v in getattr(tiny.sam, part).state_dict().items()}
        official = {k: v.shape for k, v in getattr(reference, part).state_dict().items()}
        assert ours == official


def test_sam_is_frozen_and_stays_in_eval_mode(tiny):
    tiny.train()
    assert not tiny.training and not tiny.sam.training
    assert all(not p.requires_grad for p in tiny.parameters())


def test_longest_side_keeps_aspect_ratio_and_pads_with_zeros(tiny):
    images = torch.ones(1, 3, 64, 64)
    frame = tiny.to_sam_frame(images, original_sizes=torch.tensor([[300, 600]]))
    assert frame.shape == (1, 3, 128, 128)
    assert frame[0, :, :64].abs().min() > 0  # the image: 128 wide, 64 high
    assert frame[0, :, 64:].abs().max() == 0  # the padding below it
    low = torch.randn(1, 1, 32, 32)
    out = tiny.postprocess(low, (64, 64), tiny.frame_sizes(images, torch.tensor([[300, 600]])))
    assert out.shape == (1, 1, 64, 64)


def test_square_inputs_look_the_same_in_both_preprocessing_modes():
    images = torch.randn(2, 3, 64, 64)
    longest = build_sam("tiny", image_size=128).to_sam_frame(images)
    squash = build_sam("tiny", image_size=128, preprocess="squash").to_sam_frame(images)
    torch.testing.assert_close(longest, squash)


def test_missing_sam_checkpoint_names_file_source_and_config_key(tmp_path):
    missing = tmp_path / "sam_vit_b_01ec64.pth"
    with pytest.raises(FileNotFoundError) as info:
        build_sam("tiny", checkpoint=missing)
    message = str(info.value)
    assert (
        str(missing) in message
        and "model.sam_checkpoint" in message
        and "segment-anything" in message
    )


def test_checkpoint_of_another_variant_is_refused_naming_its_variant(tmp_path):
    # A state dict shaped like vit_b's image encoder, without building a full vit_b.
    fake = {"image_encoder.patch_embed.proj.weight": torch.zeros(768, 3, 16, 16)}
    fake.update({f"image_encoder.blocks.{i}.norm1.weight": torch.zeros(768) for i in range(12)})
    path = tmp_path / "sam.pth"
    torch.save(fake, path)
    with pytest.raises(WeightFileError, match="it is vit_b"):
        build_sam("tiny", checkpoint=path)


def test_tiny_checkpoint_round_trips(tmp_path):
    source = build_sam("tiny", image_size=128)
    path = tmp_path / "tiny.pth"
    torch.save(source.sam.state_dict(), path)
    loaded = build_sam("tiny", image_size=128, checkpoint=path)
    for a, b in zip(
        source.sam.state_dict().values(), loaded.sam.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


def test_garbage_checkpoint_file_is_refused(tmp_path):
    path = tmp_path / "sam.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightFileError, match="cannot read"):
        build_sam("tiny", checkpoint=path)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variant", "dims"), [("vit_b", (768, 12)), ("vit_l", (1024, 24)), ("vit_h", (1280, 32))]
)
def test_official_variants_build_at_their_sizes(variant, dims):
    sam = build_sam(variant)
    assert sam.image_size == 1024
    assert identify_sam_variant(sam.sam.state_dict()) == variant
    assert len(sam.sam.image_encoder.blocks) == dims[1]
