"""GP-SAM: pseudo-mask → geometric prompts → frozen SAM, on tiny models and synthetic episodes."""

import pytest
import torch

from vrpsam.baselines.base import ANNOTATIONS, UnsupportedEpisodeError
from vrpsam.baselines.gpsam import GPSAM
from vrpsam.baselines.sam_prompts import encode_image
from vrpsam.modeling.vrp_sam import EmptyReferenceError


@pytest.fixture(scope="module")
def gpsam(resnet18, tiny_sam):
    return GPSAM(backbone=resnet18, sam=tiny_sam)


@pytest.mark.parametrize("prompt", ["point", "box", "both"])
def test_predicts_logits_of_the_target_frame_for_every_prompt_kind(
    resnet18, tiny_sam, make_episode, prompt
):
    method = GPSAM(backbone=resnet18, sam=tiny_sam, prompt=prompt)
    logits = method.predict(make_episode())
    assert logits.shape == (128, 128) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("annotation", ANNOTATIONS)
def test_every_annotation_kind_works(gpsam, make_episode, annotation):
    assert gpsam.predict(make_episode(annotation=annotation)).shape == (128, 128)


def test_an_unknown_annotation_kind_is_refused(gpsam, make_episode):
    with pytest.raises(UnsupportedEpisodeError, match="polygon"):
        gpsam.predict(make_episode(annotation="polygon"))


def test_an_empty_reference_is_refused(gpsam, make_episode):
    episode = make_episode()
    episode.reference_masks.zero_()
    with pytest.raises(EmptyReferenceError):
        gpsam.predict(episode)


def test_k_shot_prior_is_the_maximum_of_the_per_shot_priors(gpsam, make_episode):
    episode = make_episode(shots=2)
    both = gpsam.prior(episode)
    singles = []
    for shot in range(2):
        single = make_episode()
        single.target_image = episode.target_image
        single.reference_images = episode.reference_images[shot : shot + 1]
        single.reference_masks = episode.reference_masks[shot : shot + 1]
        singles.append(gpsam.prior(single))
    torch.testing.assert_close(both, torch.maximum(*singles))
    assert both.amin() >= 0 and both.amax() <= 1
    assert gpsam.predict(episode).shape == (128, 128)


def test_points_lie_inside_the_binarised_prior_and_the_box_bounds_it(resnet18, tiny_sam):
    method = GPSAM(backbone=resnet18, sam=tiny_sam, prompt="both", num_points=5)
    prior = torch.zeros(1, 1, 16, 16)
    prior[..., 4:8, 10:14] = 1.0
    mask = method.binarise(prior, (128, 128))
    prompts = method.prompts(mask, torch.Generator().manual_seed(0))
    xs, ys = prompts["points"][0].long().unbind(1)
    assert prompts["points"].shape == (1, 5, 2) and mask[ys, xs].all()
    x0, y0, x1, y1 = prompts["box"][0].tolist()
    ys_in, xs_in = mask.nonzero(as_tuple=True)
    assert (x0, y0, x1, y1) == (xs_in.min(), ys_in.min(), xs_in.max(), ys_in.max())


def test_a_flat_prior_falls_back_to_its_argmax(resnet18, tiny_sam):
    method = GPSAM(backbone=resnet18, sam=tiny_sam, threshold=0.5)
    mask = method.binarise(torch.zeros(1, 1, 16, 16), (128, 128))
    assert mask.sum() == 1


def test_same_seed_same_prediction_and_the_seed_drives_the_points(resnet18, tiny_sam, make_episode):
    method = GPSAM(backbone=resnet18, sam=tiny_sam, prompt="point", threshold=0.2)
    torch.testing.assert_close(
        method.predict(make_episode(seed=3)), method.predict(make_episode(seed=3)), rtol=0, atol=0
    )
    mask = torch.zeros(128, 128, dtype=torch.bool)
    mask[20:100, 20:100] = True
    draws = [method.prompts(mask, torch.Generator().manual_seed(s))["points"] for s in (1, 1, 2)]
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])


def test_multimask_output_keeps_the_output_sam_rates_best(
    resnet18, tiny_sam, make_episode, monkeypatch
):
    import vrpsam.baselines.gpsam as gpsam_module

    seen = {}
    real = gpsam_module.prompt_sam

    def spy(*args, **kwargs):
        seen["low_res"], seen["iou"] = real(*args, **kwargs)
        seen["multimask"] = kwargs["multimask_output"]
        return seen["low_res"], seen["iou"]

    monkeypatch.setattr(gpsam_module, "prompt_sam", spy)
    episode = make_episode()
    logits = GPSAM(backbone=resnet18, sam=tiny_sam, multimask_output=True).predict(episode)
    assert seen["multimask"] and seen["low_res"].shape[1] == 3
    best = int(seen["iou"][0].argmax())
    image = encode_image(tiny_sam, episode.target_image, episode.target_size)
    expected = gpsam_module.to_frame(tiny_sam, image, seen["low_res"][:, best : best + 1])[0, 0]
    torch.testing.assert_close(logits, expected)


def test_non_square_targets_come_back_on_the_pipeline_frame(gpsam, make_episode):
    assert gpsam.predict(make_episode(target_size=(300, 500))).shape == (128, 128)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"prompt": "scribble"}, "prompt"),
        ({"num_points": 0}, "num_points"),
        ({"num_points": 2.5}, "num_points"),
        ({"threshold": 1.0}, "threshold"),
        ({"threshold": 0.0}, "threshold"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(resnet18, tiny_sam, kwargs, match):
    with pytest.raises(ValueError, match=match):
        GPSAM(backbone=resnet18, sam=tiny_sam, **kwargs)
