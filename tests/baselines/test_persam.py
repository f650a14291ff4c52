"""PerSAM and PerSAM-F on tiny models and synthetic episodes; the injected decoder against SAM's."""

import pytest
import torch

from vrpsam.baselines.base import ANNOTATIONS, UnsupportedEpisodeError
from vrpsam.baselines.persam import (
    PerSAM,
    PerSAMF,
    fit_mask_weights,
    location_prior,
    masked_features,
    prior_points,
    reference_mask,
)
from vrpsam.baselines.persam_decoder import biased_attention, decode_guided
from vrpsam.baselines.sam_prompts import SamImage, encode_image
from vrpsam.modeling.sam import decode_batch
from vrpsam.modeling.vrp_sam import EmptyReferenceError


@pytest.fixture(scope="module")
def persam(tiny_sam):
    return PerSAM(sam=tiny_sam)


@pytest.fixture(scope="module")
def persam_f(tiny_sam):
    return PerSAMF(sam=tiny_sam, iterations=20)


def _image(embedding: torch.Tensor) -> SamImage:
    """A 128 px square image whose 16×16 SAM embedding is given."""
    return SamImage(embedding=embedding, frame=(128, 128), size=(128, 128))


# --- the injected decoder ----------------------------------------------------------------------


def _prompts(sam, batch=2, points=3):
    coords = torch.rand(batch, points, 2) * 128
    labels = torch.randint(0, 2, (batch, points))
    return sam.sam.prompt_encoder(points=(coords, labels), boxes=None, masks=None)


@pytest.mark.parametrize("multimask", [False, True])
def test_injected_decoder_without_injections_equals_decode_batch(tiny_sam, multimask):
    embeddings = torch.randn(2, 256, 16, 16)
    sparse, dense = _prompts(tiny_sam)
    expected = decode_batch(tiny_sam.sam, embeddings, sparse, dense, multimask_output=multimask)
    got = decode_guided(tiny_sam.sam, embeddings, sparse, dense, multimask_output=multimask)
    for a, b in zip(got, expected, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_biased_attention_without_bias_is_sams_attention(tiny_sam):
    attention = tiny_sam.sam.mask_decoder.transformer.layers[0].cross_attn_token_to_image
    q, k, v = torch.randn(2, 7, 256), torch.randn(2, 256, 256), torch.randn(2, 256, 256)
    torch.testing.assert_close(biased_attention(attention, q, k, v), attention(q=q, k=k, v=v))


def test_bias_and_target_embedding_each_change_the_decoding(tiny_sam):
    embeddings = torch.randn(1, 256, 16, 16)
    sparse, dense = _prompts(tiny_sam, batch=1)
    plain, _ = decode_guided(tiny_sam.sam, embeddings, sparse, dense)
    bias = torch.zeros(1, 16, 16)
    bias[0, :4, :4] = 5.0
    biased, _ = decode_guided(tiny_sam.sam, embeddings, sparse, dense, bias=bias)
    target, _ = decode_guided(
        tiny_sam.sam, embeddings, sparse, dense, target_embedding=torch.randn(1, 256)
    )
    assert not torch.allclose(plain, biased, atol=1e-4)
    assert not torch.allclose(plain, target, atol=1e-4)


# --- location prior and reference feature ------------------------------------------------------


def test_location_prior_picks_the_position_equal_to_the_reference_feature(tiny_sam):
    embedding = torch.randn(1, 256, 16, 16)
    feature = embedding[0, :, 5, 9].clone()
    embedding[0, :, 12, 2] = -feature  # the least similar position there can be
    grid, frame = location_prior(tiny_sam, _image(embedding), 3.0 * feature)
    assert grid.shape == (16, 16) and frame.shape == (128, 128)
    assert divmod(int(grid.argmax()), 16) == (5, 9)
    torch.testing.assert_close(grid[5, 9], torch.tensor(1.0))
    (positive, negative), labels = prior_points(frame)
    assert labels.tolist() == [1, 0]
    assert (int(positive[0]) // 8, int(positive[1]) // 8) == (9, 5)  # (x, y) inside cell (5, 9)
    assert (int(negative[0]) // 8, int(negative[1]) // 8) == (2, 12)


def test_reference_feature_is_the_mean_embedding_inside_the_mask(tiny_sam):
    embedding = torch.randn(1, 256, 16, 16)
    mask = torch.zeros(128, 128, dtype=torch.bool)
    mask[32:64, 40:72] = True  # grid rows 4..7, columns 5..8
    features = masked_features(tiny_sam, [_image(embedding)], [mask])
    assert features.shape == (16, 256)
    expected = embedding[0, :, 4:8, 5:9].mean(dim=(1, 2))
    torch.testing.assert_close(features.mean(0), expected)


def test_k_shot_reference_feature_pools_every_shot(tiny_sam):
    embeddings = [torch.randn(1, 256, 16, 16) for _ in range(2)]
    small = torch.zeros(128, 128, dtype=torch.bool)
    small[0:8, 0:8] = True  # 1 cell
    large = torch.zeros(128, 128, dtype=torch.bool)
    large[0:16, 0:24] = True  # 6 cells
    features = masked_features(tiny_sam, [_image(e) for e in embeddings], [small, large])
    assert features.shape == (7, 256)


def test_a_single_clicked_pixel_still_marks_its_cell(tiny_sam):
    mask = torch.zeros(128, 128, dtype=torch.bool)
    mask[70, 21] = True
    features = masked_features(tiny_sam, [_image(torch.randn(1, 256, 16, 16))], [mask])
    assert features.shape == (1, 256)


# --- annotations -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ANNOTATIONS)
def test_every_annotation_becomes_a_deterministic_reference_mask(tiny_sam, make_episode, kind):
    episode = make_episode(annotation=kind)
    image = encode_image(tiny_sam, episode.reference_images[0])
    masks = [
        reference_mask(
            tiny_sam,
            image,
            episode.reference_masks[0],
            kind,
            points=20,
            generator=torch.Generator().manual_seed(7),
        )
        for _ in range(2)
    ]
    assert masks[0].shape == (128, 128) and masks[0].dtype == torch.bool and masks[0].any()
    assert torch.equal(masks[0], masks[1])
    if kind == "mask":
        assert torch.equal(masks[0], episode.reference_masks[0] > 0)


@pytest.mark.parametrize("kind", ANNOTATIONS)
def test_persam_handles_every_annotation_kind(persam, make_episode, kind):
    logits = persam.predict(make_episode(annotation=kind))
    assert logits.shape == (128, 128) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


def test_persam_follows_the_reference(persam, make_episode):
    """The same target with the object annotated elsewhere in the reference: another prior."""
    here, there = make_episode(box=(10, 50)), make_episode(box=(70, 120))
    there.target_image = here.target_image
    assert not torch.equal(persam.predict(here), persam.predict(there))


@pytest.mark.parametrize("kind", ANNOTATIONS)
def test_persam_f_handles_every_annotation_kind(persam_f, make_episode, kind):
    logits = persam_f.predict(make_episode(annotation=kind))
    assert logits.shape == (128, 128) and torch.isfinite(logits).all()
    assert len(persam_f.last_fit_losses) == 20


@pytest.mark.parametrize("method", ["persam", "persam_f"])
def test_unknown_annotations_and_empty_references_are_refused(request, make_episode, method):
    model = request.getfixturevalue(method)
    with pytest.raises(UnsupportedEpisodeError, match="polygon"):
        model.predict(make_episode(annotation="polygon"))
    episode = make_episode()
    episode.reference_masks.zero_()
    with pytest.raises(EmptyReferenceError):
        model.predict(episode)


# --- behaviour ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["persam", "persam_f"])
def test_k_shot_and_non_square_targets(request, make_episode, method):
    model = request.getfixturevalue(method)
    assert model.predict(make_episode(shots=2, target_size=(300, 500))).shape == (128, 128)


@pytest.mark.parametrize("method", ["persam", "persam_f"])
def test_same_seed_same_prediction(request, make_episode, method):
    model = request.getfixturevalue(method)
    first = model.predict(make_episode(annotation="scribble", seed=5))
    again = model.predict(make_episode(annotation="scribble", seed=5))
    torch.testing.assert_close(first, again, rtol=0, atol=0)


def test_fit_moves_the_weights_to_the_output_that_matches_and_lowers_the_loss():
    target = torch.zeros(1, 32, 32)
    target[0, 8:24, 8:24] = 1
    right = 8 * (2 * target - 1)
    logits = torch.stack([-right, right, torch.full_like(right, 4.0)], dim=1)  # (1, 3, 32, 32)
    learned, losses = fit_mask_weights(logits, target, iterations=60, lr=0.02)
    assert len(losses) == 60 and losses[-1] < losses[0] - 0.1
    weights = torch.cat([1 - learned.sum()[None], learned])
    assert int(weights.argmax()) == 1


def test_persam_f_fit_lowers_its_loss_on_the_reference(tiny_sam, make_episode):
    method = PerSAMF(sam=tiny_sam, iterations=40, lr=1e-2)
    method.predict(make_episode())
    losses = method.last_fit_losses
    assert len(losses) == 40 and losses[-1] < losses[0]
    assert method.last_weights.shape == (3,)
    torch.testing.assert_close(method.last_weights.sum(), torch.tensor(1.0))


def test_fit_works_under_inference_mode(tiny_sam, make_episode):
    with torch.inference_mode():
        logits = PerSAMF(sam=tiny_sam, iterations=3).predict(make_episode())
    assert logits.shape == (128, 128)


def test_a_refinement_of_an_empty_mask_drops_the_box(persam, tiny_sam, monkeypatch):
    import vrpsam.baselines.persam as persam_module

    calls = []
    real = persam_module.prompt_sam
    monkeypatch.setattr(persam_module, "prompt_sam",
                        lambda *a, **kw: calls.append(sorted(kw)) or real(*a, **kw))  # fmt: skip
    image = encode_image(tiny_sam, torch.randn(3, 128, 128))
    points = (torch.tensor([[64.0, 64.0]]), torch.tensor([1]))
    empty, full = torch.full((1, 1, 64, 64), -20.0), torch.full((1, 1, 64, 64), -20.0)
    full[..., 20:40, 20:40] = 20.0
    out = persam.refine(image, points, empty, box=True)
    persam.refine(image, points, full, box=True)
    assert out.shape == (1, 1, 64, 64)
    assert "box" not in calls[0], "an empty mask has no box to prompt with"
    assert "box" in calls[1], "a mask's box is a prompt of the refinement"


@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (PerSAM, {"annotation_points": 0}, "annotation_points"),
        (PerSAMF, {"iterations": -1}, "iterations"),
        (PerSAMF, {"iterations": 1.5}, "iterations"),
        (PerSAMF, {"lr": 0.0}, "lr"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(tiny_sam, cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(sam=tiny_sam, **kwargs)
