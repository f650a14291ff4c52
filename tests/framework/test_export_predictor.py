"""Exports load without pickle and rebuild the same model; the predictor reuses its reference."""

import json

import numpy as np
import pytest
import torch

from vrpsam import build_vrp_sam
from vrpsam.artifacts.exports import export_model, load_export
from vrpsam.modeling.vrp_sam import EmptyReferenceError
from vrpsam.modeling.weights import WeightFileError
from vrpsam.predictor import VRPSAMPredictor, annotation_to_mask

SAM_KW = {"image_size": 128}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model with 'trained' (perturbed) encoder weights and its frozen weight files on disk."""
    folder = tmp_path_factory.mktemp("weights")
    model = build_vrp_sam(backbone="resnet18", sam="tiny", sam_kwargs=SAM_KW)
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(0.01 * torch.randn_like(p))
    sam_path, backbone_path = folder / "sam_tiny.pth", folder / "resnet18.pth"
    torch.save(model.sam.sam.state_dict(), sam_path)
    torch.save(model.backbone.body.state_dict(), backbone_path)
    return model.eval(), sam_path, backbone_path


def test_export_round_trip_rebuilds_the_same_model(trained, tmp_path):
    model, sam_path, backbone_path = trained
    export_model(model, tmp_path, sam_checkpoint=sam_path, backbone_checkpoint=backbone_path,
                 training={"image_size": 128})  # fmt: skip
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"]["backbone"] == "resnet18" and config["learnable_parameters"] > 0
    loaded = load_export(tmp_path, sam_checkpoint=sam_path, backbone_checkpoint=backbone_path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_export_refuses_other_frozen_weights_and_another_backbone(trained, tmp_path):
    model, sam_path, backbone_path = trained
    export_model(model, tmp_path, sam_checkpoint=sam_path, backbone_checkpoint=backbone_path)
    other = tmp_path / "other_sam.pth"
    state = model.sam.sam.state_dict()
    torch.save({k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}, other)
    with pytest.raises(WeightFileError, match="trained on SAM weights"):
        load_export(tmp_path, sam_checkpoint=other, backbone_checkpoint=backbone_path)
    with pytest.raises(ValueError, match="trained with backbone 'resnet18'"):
        load_export(tmp_path, backbone="resnet50")


def test_missing_export_folder_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="vrpsam-export"):
        load_export(tmp_path / "nowhere")


def test_predictor_matches_the_model_and_reuses_the_reference(trained, tmp_path, monkeypatch):
    model, sam_path, backbone_path = trained
    export_model(model, tmp_path, sam_checkpoint=sam_path, backbone_checkpoint=backbone_path,
                 training={"image_size": 128})  # fmt: skip
    predictor = VRPSAMPredictor.from_export(
        tmp_path, sam_checkpoint=sam_path, backbone_checkpoint=backbone_path
    )
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
    target = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
    predictor.set_reference(reference, box=(20, 30, 90, 100))
    calls = []
    original = predictor.model.reference_state
    monkeypatch.setattr(
        predictor.model, "reference_state", lambda *a: calls.append(1) or original(*a)
    )
    mask, score, logits = predictor.predict(target)
    predictor.predict_batch([target, target])
    assert len(calls) == 1  # the reference side ran once for three targets
    assert mask.shape == (128, 128) and mask.dtype == bool and isinstance(score, float)
    t = predictor.transform
    ref_mask = torch.from_numpy(
        annotation_to_mask((128, 128), box=(20, 30, 90, 100)).astype(np.float32)
    )
    with torch.no_grad():
        expected = model(
            t.image(target)[None], t.image(reference)[None, None], ref_mask[None, None]
        )
    np.testing.assert_allclose(logits, expected[0, 0].numpy(), atol=1e-4)


def test_predictor_k_shot_and_bad_references(trained):
    model, *_ = trained
    predictor = VRPSAMPredictor(model=model, image_size=128)
    image = np.zeros((100, 150, 3), dtype=np.uint8)
    with pytest.raises(RuntimeError, match="set_reference"):
        predictor.predict(image)
    predictor.set_reference(image, points=[(10, 10), (40, 50)])
    predictor.add_reference(image, scribble=[[(5, 5), (60, 40), (90, 20)]])
    assert predictor.shots == 2
    mask, _, _ = predictor.predict(np.zeros((60, 80, 3), dtype=np.uint8))
    assert mask.shape == (60, 80)
    with pytest.raises(EmptyReferenceError):
        predictor.set_reference(image, mask=np.zeros((100, 150)))
    with pytest.raises(ValueError, match="exactly one"):
        predictor.set_reference(image, box=(0, 0, 5, 5), points=[(1, 1)])
    with pytest.raises(ValueError, match="not a readable image"):
        predictor.predict(__file__)


def test_single_click_survives_the_resize_to_model_size():
    from vrpsam.predictor import VRPSAMPredictor as P

    class Stub:
        def eval(self):
            return self

        def to(self, device):
            return self

    predictor = P(model=Stub(), image_size=64)
    predictor.set_reference(np.zeros((1000, 1000, 3), dtype=np.uint8), points=[(500, 500)])
    assert predictor._masks[0].sum() >= 1
