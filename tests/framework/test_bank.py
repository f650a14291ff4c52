"""A reference bank: many classes at once, saved once, refused for other model weights."""

import copy
import json
import os
import stat

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from vrpsam import build_vrp_sam
from vrpsam.artifacts.exports import export_model, load_export
from vrpsam.cli import bank as bank_cli
from vrpsam.conf import CONFIG_DIR
from vrpsam.modeling.vrp_sam import EmptyReferenceError
from vrpsam.predictor import ReferenceBank, VRPSAMPredictor
from vrpsam.predictor.bank import (
    BankError,
    BankMismatchError,
    MethodBank,
    choose_presence_threshold,
    export_files,
)
from vrpsam.predictor.folder import predict

TINY_SAM = {"image_size": 128, "patch_size": 8, "window_size": 8}


def noise(shape, seed):
    return np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)


def square(shape, box):
    x0, y0, x1, y1 = box
    mask = np.zeros(shape, dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def perturbed(state: dict, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {k: v + 0.01 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
            for k, v in state.items()}  # fmt: skip


def make_export(folder, frozen_files, seed):
    """An export of the demo's tiny models on the given frozen files; encoder perturbed by seed."""
    sam_file, backbone_file = frozen_files
    model = build_vrp_sam(backbone="resnet18", sam="tiny", sam_kwargs=TINY_SAM,
                          sam_checkpoint=sam_file, backbone_checkpoint=backbone_file)  # fmt: skip
    model.encoder.load_state_dict(perturbed(model.encoder.state_dict(), seed))
    return export_model(model, folder, sam_checkpoint=sam_file, backbone_checkpoint=backbone_file,
                        training={"image_size": 128})  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Small decodes: several OpenMP threads on a small busy machine contend (see the baselines).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def export(tmp_path_factory, frozen_files):
    return make_export(tmp_path_factory.mktemp("export"), frozen_files, seed=1)


@pytest.fixture(scope="module")
def predictor(export):
    return VRPSAMPredictor.from_export(export)


@pytest.fixture(scope="module")
def saved(predictor, export, tmp_path_factory):
    """A 3-class bank (two shots of "cat") saved once, and its folder."""
    bank = ReferenceBank(predictor, presence_threshold=0.3, model_files=export_files(export))
    bank.add("cat", noise((100, 150, 3), 1), box=(10, 10, 60, 60))
    bank.add("cat", noise((90, 120, 3), 2), points=[(20, 30), (40, 35)])
    bank.add("dog", noise((100, 150, 3), 3), mask=square((100, 150), (50, 20, 140, 90)))
    bank.add("car", noise((80, 80, 3), 4), scribble=[[(5, 5), (60, 40)]])
    return bank, bank.save(tmp_path_factory.mktemp("bank"))


def test_a_bank_segments_every_class_with_the_target_features_computed_once(saved, monkeypatch):
    bank, _ = saved
    model = bank.model.predictor.model
    calls = []
    original = model.target_features
    monkeypatch.setattr(model, "target_features", lambda x: calls.append(1) or original(x))
    result = bank.segment(noise((70, 110, 3), 9))
    assert len(calls) == 1  # one backbone pass for three classes
    assert bank.classes == ["cat", "dog", "car"] and bank.shots == {"cat": 2, "dog": 1, "car": 1}
    assert result.labels.shape == (70, 110) and result.labels.dtype == np.int64
    assert set(np.unique(result.labels)) <= {0, 1, 2, 3}
    assert list(result.scores) == bank.classes
    assert all(0.0 <= s <= 1.0 for s in result.scores.values())
    assert result.present == [c for c, s in result.scores.items() if s >= 0.3]


def test_a_one_class_bank_labels_what_the_predictor_masks(predictor):
    reference, target = noise((100, 150, 3), 1), noise((70, 110, 3), 9)
    bank = ReferenceBank(predictor, presence_threshold=0.0)
    bank.add("cat", reference, box=(10, 10, 60, 60))
    own = VRPSAMPredictor(model=predictor.model, image_size=128)
    own.set_reference(reference, box=(10, 10, 60, 60))
    np.testing.assert_array_equal(bank.segment(target).labels == 1, own.predict(target)[0])


def test_bank_round_trip_gives_identical_outputs_without_recomputing_references(
    saved, predictor, monkeypatch
):
    bank, folder = saved
    info = json.loads((folder / "bank.json").read_text())
    assert (info["classes"], info["shots"], info["image_size"]) == (bank.classes, [2, 1, 1], 128)
    assert info["presence_threshold"] == 0.3 and info["format"] == 1
    assert {"sam_weights_sha256", "backbone_weights_sha256", "vrp_encoder_sha256"} <= set(
        info["fingerprint"]
    )
    monkeypatch.setattr(predictor.model, "reference_state", None)  # stored, not recomputed
    loaded = ReferenceBank.load(folder, predictor)
    target = noise((70, 110, 3), 9)
    before, after = bank.segment(target), loaded.segment(target)
    np.testing.assert_array_equal(before.labels, after.labels)
    assert before.scores == after.scores and before.present == after.present


def test_a_refused_annotation_changes_nothing(predictor):
    bank = ReferenceBank(predictor)
    bank.add("cat", noise((50, 50, 3), 1), box=(5, 5, 20, 20))
    with pytest.raises(EmptyReferenceError):
        bank.add("cat", noise((50, 50, 3), 1), mask=np.zeros((50, 50)))
    with pytest.raises(ValueError, match="exactly one"):
        bank.add("dog", noise((50, 50, 3), 1), box=(0, 0, 5, 5), points=[(1, 1)])
    assert bank.shots == {"cat": 1}


def test_a_bank_is_refused_for_another_sam_file_and_another_export(
    saved, export, frozen_files, tmp_path
):
    _, folder = saved
    other_sam = tmp_path / "other_sam.pth"
    torch.save(perturbed(torch.load(frozen_files[0], weights_only=True), 2), other_sam)
    model = load_export(export, sam_checkpoint=other_sam, check_frozen_weights=False)
    with pytest.raises(BankMismatchError, match=r"sam_weights_sha256: sha256 \w+… \(bank\)") as e:
        ReferenceBank.load(folder, VRPSAMPredictor(model=model, image_size=128))
    assert "vrpsam-bank build" in str(e.value) and "sam_tiny.pth" in str(e.value)
    assert "vrp_encoder_sha256" not in str(e.value)
    other_export = make_export(tmp_path / "other_export", frozen_files, seed=2)
    with pytest.raises(BankMismatchError, match="vrp_encoder_sha256") as e:
        ReferenceBank.load(folder, VRPSAMPredictor.from_export(other_export))
    assert "sam_weights_sha256" not in str(e.value)


def test_exported_and_bank_files_get_the_mode_a_plain_write_gives(saved, export, tmp_path):
    plain = tmp_path / "plain.json"
    plain.write_text("{}")  # under the same umask as the export and the bank were written
    for path in (export / "model.safetensors", export / "config.json",
                 saved[1] / "bank.safetensors", saved[1] / "bank.json"):  # fmt: skip
        assert stat.S_IMODE(os.stat(path).st_mode) == stat.S_IMODE(os.stat(plain).st_mode), path


def test_a_missing_or_damaged_bank_is_named(saved, predictor, tmp_path):
    _, folder = saved
    with pytest.raises(FileNotFoundError, match=r"has no bank\.json; build a bank with"):
        ReferenceBank.load(tmp_path / "nowhere", predictor)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bank.json").write_text("{not json")
    (broken / "bank.safetensors").write_bytes((folder / "bank.safetensors").read_bytes())
    with pytest.raises(BankError, match="not valid JSON"):
        ReferenceBank.load(broken, predictor)
    (broken / "bank.json").write_text((folder / "bank.json").read_text())
    (broken / "bank.safetensors").write_bytes((folder / "bank.safetensors").read_bytes()[:-10])
    with pytest.raises(BankError, match="incomplete or damaged"):
        ReferenceBank.load(broken, predictor)


def write_refs(root):
    """refs/cat: a JPEG + PNG mask and a PNG + _mask.png; refs/dog: one JPEG + mask."""
    for cls, name, suffix, mask_name, seed in [("cat", "a", ".jpg", "a.png", 1),
                                               ("cat", "b", ".png", "b_mask.png", 2),
                                               ("dog", "c", ".jpeg", "c.png", 3)]:  # fmt: skip
        (root / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(noise((60, 80, 3), seed)).save(root / cls / f"{name}{suffix}")
        Image.fromarray(square((60, 80), (10, 10, 50, 40)) * 255).save(root / cls / mask_name)


def test_bank_build_writes_a_bank_from_a_refs_folder(export, predictor, tmp_path, capsys):
    write_refs(tmp_path / "refs")
    refs, out = str(tmp_path / "refs"), str(tmp_path / "bank")
    code = bank_cli.main(["build", "--export", str(export), "--refs", refs, "--out", out,
                          "--presence-threshold", "0.4"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "2 classes" in out and "cat: 2 shots" in out and "dog: 1 shot" in out
    bank = ReferenceBank.load(tmp_path / "bank", predictor)
    assert bank.shots == {"cat": 2, "dog": 1} and bank.presence_threshold == 0.4
    info = json.loads((tmp_path / "bank" / "bank.json").read_text())
    assert info["model_files"]["sam"]["file"] == "sam_tiny.pth"


def test_bank_build_names_empty_masks_and_images_without_masks(export, tmp_path, capsys):
    refs = tmp_path / "refs"
    write_refs(refs)
    Image.fromarray(noise((60, 80, 3), 4)).save(refs / "dog" / "empty.jpg")
    Image.fromarray(np.zeros((60, 80), np.uint8)).save(refs / "dog" / "empty.png")
    Image.fromarray(noise((60, 80, 3), 5)).save(refs / "dog" / "lonely.jpg")
    with pytest.raises(SystemExit) as exit_info:
        bank_cli.main(["build", "--export", str(export), "--refs", str(refs),
                       "--out", str(tmp_path / "bank")])  # fmt: skip
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "empty.jpg with empty.png: the reference mask marks no pixel" in err
    assert "lonely.jpg: no mask" in err and "lonely.png" in err
    assert not (tmp_path / "bank").exists()


def test_bank_calibrate_stores_the_threshold_that_fits_the_validation_images(
    export, predictor, tmp_path, capsys
):
    write_refs(tmp_path / "refs")
    bank_dir = tmp_path / "bank"
    bank_cli.main(["build", "--export", str(export), "--refs", str(tmp_path / "refs"),
                   "--out", str(bank_dir)])  # fmt: skip
    val = tmp_path / "val"
    shown = {"cat": [11, 12], "dog": [13], "_absent": [14, 15]}
    for folder, seeds in shown.items():
        (val / folder).mkdir(parents=True)
        for seed in seeds:
            Image.fromarray(noise((50, 70, 3), seed)).save(val / folder / f"v{seed}.jpg")
    # A mask beside an image (the refs layout) is not a validation image.
    Image.fromarray(square((50, 70), (5, 5, 30, 30)) * 255).save(val / "cat" / "v11.png")
    code = bank_cli.main(["calibrate", "--export", str(export), "--bank", str(bank_dir),
                          "--val", str(val)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "5 validation images" in printed
    assert "scored 5/5 validation images" in printed  # progress, a line per batch
    # The same choice from the scores, with each image's truth: its folder's class only.
    bank = ReferenceBank.load(bank_dir, predictor)
    present, absent = [], []
    for folder, seeds in shown.items():
        for seed in seeds:
            for name, score in bank.segment(val / folder / f"v{seed}.jpg").scores.items():
                (present if name == folder else absent).append(score)
    assert (len(present), len(absent)) == (3, 7)
    assert bank.presence_threshold == pytest.approx(choose_presence_threshold(present, absent))
    info = json.loads((bank_dir / "bank.json").read_text())
    chosen_on = info["presence_threshold_chosen_on"]
    assert chosen_on["images"] == 5 and chosen_on["present_pairs"] == 3
    assert 0 <= chosen_on["auc"] <= 100
    # A folder that is not a class of the bank is named, and the bank is left as it was.
    (val / "horse").mkdir()
    with pytest.raises(SystemExit):
        bank_cli.main(["calibrate", "--export", str(export), "--bank", str(bank_dir),
                       "--val", str(val)])  # fmt: skip
    assert "horse" in capsys.readouterr().err
    assert json.loads((bank_dir / "bank.json").read_text()) == info


def predict_cfg(*overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="predict", overrides=list(overrides))


def test_predict_with_a_bank_writes_label_maps_overlays_and_scores(saved, export, tmp_path):
    _, folder = saved
    targets = tmp_path / "targets"
    targets.mkdir()
    for i in range(2):
        Image.fromarray(noise((60, 90, 3), 20 + i)).save(targets / f"t{i}.png")
    common = [f"export_dir={export}", f"targets={targets}", f"out_dir={tmp_path / 'out'}"]
    report = predict(predict_cfg(*common, f"bank={folder}"))
    assert [p.name for p in report.written] == ["t0_labels.png", "t1_labels.png"]
    labels = Image.open(tmp_path / "out" / "t0_labels.png")
    assert labels.mode == "P" and labels.size == (90, 60)
    assert set(np.unique(np.asarray(labels))) <= {0, 1, 2, 3}
    assert labels.getpalette()[3:6] == [128, 0, 0]  # VOC: label 1 is dark red
    overlay = Image.open(tmp_path / "out" / "t0_overlay.png")
    assert overlay.height >= 60 and overlay.width > 90  # the legend panel on the right
    found = json.loads((tmp_path / "out" / "bank_predictions.json").read_text())
    assert found["classes"] == ["cat", "dog", "car"]
    assert [t["name"] for t in found["targets"]] == ["t0", "t1"]
    assert set(found["targets"][0]["scores"]) == {"cat", "dog", "car"}
    with pytest.raises(ValueError, match=r"reference.image=IMAGE .* or bank=BANK_DIR"):
        predict(predict_cfg(*common))
    with pytest.raises(ValueError, match="not both"):
        predict(predict_cfg(*common, f"bank={folder}", "reference.image=r.jpg"))


def test_a_baseline_bank_round_trips_and_refuses_another_sam(tmp_path):
    from vrpsam.baselines.persam import PerSAM
    from vrpsam.modeling.sam import build_sam

    torch.manual_seed(0)
    sam = build_sam("tiny", **TINY_SAM)
    bank = ReferenceBank(MethodBank(PerSAM(sam=sam), image_size=128), presence_threshold=0.0)
    bank.add("cat", noise((64, 64, 3), 1), mask=square((64, 64), (10, 10, 40, 40)))
    bank.add("dog", noise((64, 64, 3), 2), box=(30, 20, 60, 60))
    with pytest.raises(ValueError, match="one annotation kind"):
        bank.add("dog", noise((64, 64, 3), 3), points=[(5, 5)])
    assert bank.shots == {"cat": 1, "dog": 1}
    target = noise((64, 64, 3), 4)
    before = bank.segment(target)
    assert before.labels.shape == (64, 64) and set(before.scores) == {"cat", "dog"}
    bank.save(tmp_path / "bank")
    after = ReferenceBank.load(tmp_path / "bank", bank.model).segment(target)
    np.testing.assert_array_equal(before.labels, after.labels)
    assert before.scores == after.scores
    other = copy.deepcopy(sam)
    other.load_state_dict(perturbed(other.state_dict(), 3))
    with pytest.raises(BankMismatchError, match="weights_sha256"):
        ReferenceBank.load(tmp_path / "bank", MethodBank(PerSAM(sam=other), image_size=128))


def test_presence_threshold_maximises_validation_accuracy():
    # Separable: the middle of the gap between the highest absent and the lowest present score.
    assert choose_presence_threshold([0.7, 0.9], [0.2, 0.4]) == pytest.approx(0.55)
    # One error either way (at 0.45 the absent 0.65 is called present; at 0.625 the present 0.6
    # is missed): F1 prefers the false positive (6/7 against 4/6).
    assert choose_presence_threshold([0.9, 0.8, 0.6], [0.1, 0.3, 0.65]) == pytest.approx(0.45)
    assert choose_presence_threshold([], [0.3]) > 0.3  # nothing present: above every score
    assert choose_presence_threshold([0.2], []) <= 0.2
    with pytest.raises(ValueError, match="no validation pairs"):
        choose_presence_threshold([], [])
