"""Bad inputs to the predictor and to ``vrpsam-predict`` are read right or refused by name."""

import sys

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

import vrpsam.cli.predict as predict_cli
from vrpsam import build_vrp_sam
from vrpsam.conf import CONFIG_DIR
from vrpsam.modeling.vrp_sam import EmptyReferenceError
from vrpsam.predictor import VRPSAMPredictor, annotation_to_mask, load_rgb
from vrpsam.predictor.folder import PredictionReport, list_targets, output_names, overlay, predict

TINY_SAM = {"image_size": 128, "patch_size": 8, "window_size": 8}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_vrp_sam(backbone="resnet18", sam="tiny", sam_kwargs=TINY_SAM).eval()


@pytest.fixture
def predictor(model):
    return VRPSAMPredictor(model=model, image_size=128)


def noise(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def square_mask(shape=(48, 64), box=(10, 8, 40, 30)):
    mask = np.zeros(shape, dtype=np.uint8)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = 1
    return mask


# --- images: files, PIL images and arrays -------------------------------------------------------


def test_16_bit_target_file_is_predicted_like_its_8_bit_content(predictor, tmp_path):
    grey = noise((48, 64))
    path = tmp_path / "target16.png"
    Image.fromarray(grey.astype(np.uint16) * 257).save(path)
    np.testing.assert_array_equal(load_rgb(path), np.repeat(grey[..., None], 3, axis=2))
    predictor.set_reference(noise((48, 64, 3), 1), box=(10, 10, 40, 30))
    _, _, from_file = predictor.predict(path)
    _, _, from_array = predictor.predict(np.repeat(grey[..., None], 3, axis=2))
    np.testing.assert_array_equal(from_file, from_array)


def test_in_memory_grey_rgba_and_uint16_arrays_are_read_and_float_refused():
    rgb = noise((6, 5, 3))
    grey = rgb[..., 0]
    np.testing.assert_array_equal(load_rgb(grey), np.stack([grey] * 3, axis=2))
    rgba = np.concatenate([rgb, np.zeros((6, 5, 1), np.uint8)], axis=2)
    np.testing.assert_array_equal(load_rgb(rgba), rgb)  # alpha dropped, colours kept
    np.testing.assert_array_equal(load_rgb(rgb.astype(np.uint16) * 257), rgb)
    with pytest.raises(ValueError, match=r"float64 .*convert it to uint8 0\.\.255"):
        load_rgb(rgb / 255.0)
    with pytest.raises(ValueError, match=r"dtype int64; convert it to uint8 0\.\.255"):
        load_rgb(rgb.astype(np.int64))
    with pytest.raises(ValueError, match=r"shape \(6, 5, 2\)"):
        load_rgb(rgb[..., :2])


def test_pil_palette_image_gives_its_colours_not_its_indices():
    image = Image.fromarray(np.array([[0, 1]], dtype=np.uint8), mode="P")
    image.putpalette([9, 8, 7, 10, 200, 30] + [0] * 762)
    np.testing.assert_array_equal(load_rgb(image), [[(9, 8, 7), (10, 200, 30)]])


def test_exif_rotated_jpeg_is_read_as_a_viewer_shows_it(tmp_path):
    stored = np.zeros((16, 32, 3), dtype=np.uint8)
    stored[:, :16] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90° clockwise: the stored left half (red) on top
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    shown = load_rgb(path)
    assert shown.shape == (32, 16, 3)
    assert shown[4, 8, 0] > 200 and shown[28, 8, 0] < 60


def test_float_image_file_is_refused_naming_file_mode_and_fix(tmp_path):
    path = tmp_path / "depth.tif"
    Image.fromarray(np.ones((4, 4), dtype=np.float32)).save(path)
    with pytest.raises(ValueError, match=r"depth\.tif: PIL mode F .*convert it to 8-bit"):
        load_rgb(path)


# --- reference annotations ----------------------------------------------------------------------


def test_reference_mask_and_scribble_may_be_files(predictor, tmp_path):
    image = noise((48, 64, 3))
    image_path = tmp_path / "reference.png"
    Image.fromarray(image).save(image_path)
    # A VOC-style label PNG: class 15 with a 255 border; palette index 0 painted white, so only
    # reading the index (not the colour) finds the object.
    labels = square_mask() * 15
    labels[7, 9:41] = 255
    label_png = Image.fromarray(labels, mode="P")
    label_png.putpalette([255, 255, 255] + [0] * 765)
    label_png.save(tmp_path / "mask.png")
    predictor.set_reference(image_path, mask=tmp_path / "mask.png")
    from_file = predictor._masks[0].clone()
    predictor.set_reference(image, mask=labels != 0)
    assert torch.equal(from_file, predictor._masks[0])
    Image.fromarray(square_mask() * 255).save(tmp_path / "strokes.png")
    predictor.set_reference(str(image_path), scribble=str(tmp_path / "strokes.png"))
    assert predictor.shots == 1 and torch.equal(
        predictor._masks[0], predictor._shot(image, mask=square_mask())[1]
    )


def test_mask_file_of_another_size_is_refused_naming_both_sizes(predictor, tmp_path):
    Image.fromarray(square_mask((30, 40), (1, 1, 20, 20)) * 255).save(tmp_path / "small.png")
    with pytest.raises(ValueError, match=r"small\.png is 40x30 .* reference image is 64x48"):
        predictor.set_reference(noise((48, 64, 3)), mask=tmp_path / "small.png")


def test_set_reference_replaces_and_add_reference_adds_a_shot(predictor, model):
    image, target = noise((48, 64, 3)), noise((48, 64, 3), 2)
    assert predictor.set_reference(image, mask=square_mask()) is None
    predictor.set_reference(image, box=(5, 5, 20, 20))
    assert predictor.shots == 1
    only_box = VRPSAMPredictor(model=model, image_size=128)
    only_box.set_reference(image, box=(5, 5, 20, 20))
    np.testing.assert_array_equal(predictor.predict(target)[2], only_box.predict(target)[2])
    with pytest.raises(EmptyReferenceError):
        predictor.set_reference(image, mask=np.zeros((48, 64)))
    assert predictor.shots == 1  # a refused call keeps the reference it would have replaced
    assert predictor.add_reference(image, points=[(30, 20)]) is None
    assert predictor.shots == 2
    predictor.reset_reference()
    with pytest.raises(RuntimeError, match="set_reference"):
        predictor.predict(target)


def test_box_corners_in_any_order_give_the_same_box_clipped_to_the_image():
    expected = annotation_to_mask((48, 64), box=(10, 8, 40, 30))
    for box in [(40, 30, 10, 8), (10, 30, 40, 8), (40, 8, 10, 30)]:
        np.testing.assert_array_equal(annotation_to_mask((48, 64), box=box), expected, str(box))
    clipped = annotation_to_mask((48, 64), box=(100, 200, 50, -5))
    assert clipped[:, 50:].all() and not clipped[:, :50].any()


@pytest.mark.parametrize(
    ("box", "error", "message"),
    [
        ((70, 0, 90, 10), EmptyReferenceError, r"\(70\.0, 0\.0, 90\.0, 10\.0\) lies entirely "
         r"outside the 64x48"),
        ((0, 0, float("nan"), 10), ValueError, r"non-finite"),
        ((0, 0, 10), ValueError, r"\(0, 0, 10\) is not 4 numbers"),
    ],
)  # fmt: skip
def test_box_outside_the_image_non_finite_or_not_four_numbers_is_refused(box, error, message):
    with pytest.raises(error, match=message):
        annotation_to_mask((48, 64), box=box)


def test_points_outside_the_image_are_refused_naming_them_and_the_size():
    with pytest.raises(ValueError, match=r"\[\(64\.0, 5\.0\), \(-1\.0, 3\.0\)\] .*64x48"):
        annotation_to_mask((48, 64), points=[(10, 10), (64, 5), (-1, 3)])
    inside = annotation_to_mask((48, 64), points=[(63.9, 47.2)])
    assert inside[47, 63] == 1 and inside.sum() == 1


# --- vrpsam-predict -----------------------------------------------------------------------------


def predict_cfg(*overrides):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="predict", overrides=list(overrides))


@pytest.fixture
def cli(model, tmp_path, monkeypatch):
    """``cli(targets, *overrides)``: run ``predict`` on the tiny model; ``.loads`` holds the
    predictors built (the model is never loaded from an export here)."""
    reference = tmp_path / "reference.png"
    Image.fromarray(noise((48, 64, 3), 7)).save(reference)
    loads = []

    def from_export(cls, *args, **kwargs):
        loads.append(cls(model=model, image_size=128))
        return loads[-1]

    monkeypatch.setattr(VRPSAMPredictor, "from_export", classmethod(from_export))

    def run(targets, *overrides):
        cfg = predict_cfg(
            "export_dir=unused",
            f"targets={targets}",
            f"out_dir={tmp_path / 'out'}",
            f"reference.image={reference}",
            *(overrides or ["reference.box=[10,10,40,30]"]),
        )
        return predict(cfg)

    run.loads, run.reference, run.out = loads, reference, tmp_path / "out"
    return run


def test_outputs_of_targets_sharing_a_stem_do_not_overwrite_each_other(cli, tmp_path):
    folder = tmp_path / "targets"
    folder.mkdir()
    Image.fromarray(noise((48, 64, 3), 1)).save(folder / "a.jpg")
    Image.fromarray(noise((48, 64, 3), 2)).save(folder / "a.png")
    Image.fromarray(noise((48, 64, 3), 3)).save(folder / "b.png")
    report = cli(folder)
    assert [p.name for p in report.written] == ["a_jpg_mask.png", "a_png_mask.png", "b_mask.png"]
    for name in ("a_jpg", "a_png", "b"):
        assert (cli.out / f"{name}_overlay.png").is_file()


def test_output_names_of_a_glob_over_two_folders_are_unique_and_deterministic(tmp_path):
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.jpg").write_bytes(b"")
        (tmp_path / folder / "b.jpg").write_bytes(b"")
    (tmp_path / "one" / "a_jpg.png").write_bytes(b"")  # the plain name another would take
    targets = list_targets(f"{tmp_path}/*/*")
    names = output_names(targets)
    assert dict(zip([str(p.relative_to(tmp_path)) for p in targets], names, strict=True)) == {
        "one/a.jpg": "a_jpg_1",
        "one/a_jpg.png": "a_jpg",
        "one/b.jpg": "b_jpg_1",
        "two/a.jpg": "a_jpg_2",
        "two/b.jpg": "b_jpg_2",
    }
    assert output_names(list_targets(f"{tmp_path}/*/*")) == names


def test_folder_run_reports_unreadable_targets_and_carries_on(cli, tmp_path, capsys):
    folder = tmp_path / "targets"
    folder.mkdir()
    Image.fromarray(noise((48, 64, 3), 1)).save(folder / "first.png")
    (folder / "notes.jpg").write_text("not an image")
    Image.fromarray(np.ones((4, 4), dtype=np.float32)).save(folder / "depth.tif")
    Image.fromarray(noise((48, 64, 3), 2)).save(folder / "last.png")
    report = cli(folder, "reference.box=[10,10,40,30]", "batch_size=2")
    assert [p.name for p in report.written] == ["first_mask.png", "last_mask.png"]
    assert all(p.is_file() for p in report.written)
    failed = dict(report.failed)
    assert set(failed) == {folder / "depth.tif", folder / "notes.jpg"}
    assert "not a readable image" in failed[folder / "notes.jpg"]
    assert "mode F" in failed[folder / "depth.tif"]
    err = capsys.readouterr().err
    assert "notes.jpg" in err and "depth.tif" in err


def test_unreadable_reference_stops_the_run_before_the_model_is_loaded(cli, tmp_path):
    cli.reference.write_text("not an image")
    with pytest.raises(ValueError, match=r"cannot read reference image .*reference\.png"):
        cli(tmp_path / "reference.png")
    assert cli.loads == []


def test_reference_mask_file_goes_through_the_shared_reader(cli, tmp_path):
    labels = square_mask() * 15
    label_png = Image.fromarray(labels, mode="P")
    label_png.putpalette([255, 255, 255] + [0] * 765)  # index 0 is white: only the index counts
    label_png.save(tmp_path / "label.png")
    report = cli(cli.reference, f"reference.mask={tmp_path / 'label.png'}")
    assert len(report.written) == 1 and not report.failed
    expected = VRPSAMPredictor(model=cli.loads[0].model, image_size=128)
    expected.set_reference(cli.reference, mask=labels != 0)
    assert torch.equal(cli.loads[0]._masks[0], expected._masks[0])
    Image.fromarray(np.ones((10, 10), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(ValueError, match=r"10x10 .* reference image is 64x48"):
        cli(cli.reference, f"reference.mask={tmp_path / 'small.png'}")


@pytest.mark.parametrize("failed", [0, 1])
def test_main_exits_with_1_when_some_targets_failed(tmp_path, monkeypatch, capsys, failed):
    report = PredictionReport(
        written=[tmp_path / "a_mask.png"],
        failed=[(tmp_path / "b.jpg", "cannot read image b.jpg")] * failed,
    )
    monkeypatch.setattr(predict_cli, "predict", lambda cfg: report)
    monkeypatch.setattr(sys, "argv", ["vrpsam-predict", "export_dir=e", "targets=t",
                                      f"out_dir={tmp_path}", "reference.image=r"])  # fmt: skip
    if failed:
        with pytest.raises(SystemExit) as exit_info:
            predict_cli.main()
        assert exit_info.value.code == 1
    else:
        predict_cli.main()  # returns: exit status 0
    out = capsys.readouterr()
    assert f"1 targets segmented (masks and overlays in {tmp_path}), {failed} failed" in out.out
    assert ("b.jpg" in out.err) == bool(failed)


def test_overlay_tints_and_outlines_the_mask_and_keeps_the_rest():
    image = noise((40, 50, 3))
    mask = square_mask((40, 50), (10, 10, 30, 25)).astype(bool)
    out = overlay(image, mask)
    np.testing.assert_array_equal(out[~mask], image[~mask])
    # The outer border ring is white, the one inside it black: visible on any image.
    assert (out[10, 10:30] == 255).all() and (out[10:25, 29] == 255).all()
    assert (out[11, 11:29] == 0).all() and (out[11:24, 11] == 0).all()
    tinted = (0.5 * image[12:23, 12:28] + 0.5 * np.array([255, 30, 30])).astype(np.uint8)
    np.testing.assert_array_equal(out[12:23, 12:28], tinted)
