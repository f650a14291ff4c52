"""read_rgb / read_binary_mask: each supported PIL mode decodes right; the others are refused."""

import numpy as np
import pytest
from PIL import Image

from vrpsam.data.reading import DatasetError, ImageReadError, read_binary_mask, read_rgb

SIXTEEN_BIT = np.array([[0, 257, 1000, 32896, 65535]], dtype=np.uint16)
AS_EIGHT_BIT = np.array([[0, 1, 4, 128, 255]], dtype=np.uint8)  # value / 257, rounded


def rotated_jpeg(path, orientation=6):
    """A 16x32 (H x W) JPEG, left half red and right half blue, tagged with an EXIF rotation."""
    pixels = np.zeros((16, 32, 3), dtype=np.uint8)
    pixels[:, :16] = (255, 0, 0)
    pixels[:, 16:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    return path


def test_16_bit_grey_png_is_scaled_to_8_bits_not_read_as_white(tmp_path):
    path = tmp_path / "depth.png"
    Image.fromarray(SIXTEEN_BIT).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb = read_rgb(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 5, 3)
    np.testing.assert_array_equal(rgb, np.repeat(AS_EIGHT_BIT[..., None], 3, axis=2))


def test_32_bit_integer_image_in_16_bit_range_is_scaled_and_beyond_it_refused(tmp_path):
    inside, beyond = tmp_path / "inside.tif", tmp_path / "beyond.tif"
    Image.fromarray(SIXTEEN_BIT.astype(np.int32)).save(inside)
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(beyond)
    assert Image.open(inside).mode == "I"
    np.testing.assert_array_equal(read_rgb(inside)[..., 0], AS_EIGHT_BIT)
    with pytest.raises(ImageReadError, match=r"beyond\.tif.*mode I .*0\.\.70000"):
        read_rgb(beyond)


def _palette_image():
    image = Image.fromarray(np.array([[0, 1], [1, 0]], dtype=np.uint8), mode="P")
    image.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    return image


# (mode, how to make it, file suffix, expected (2, 2, 3) RGB)
BLACK, GREEN = (0, 0, 0), (10, 200, 30)
EIGHT_BIT_CASES = {
    "L": (lambda: Image.fromarray(np.array([[0, 77], [200, 255]], np.uint8)), ".png",
          [[(0,) * 3, (77,) * 3], [(200,) * 3, (255,) * 3]]),
    "1": (lambda: Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).convert("1"), ".png",
          [[(0,) * 3, (255,) * 3], [(255,) * 3, (0,) * 3]]),
    "P": (_palette_image, ".png", [[BLACK, GREEN], [GREEN, BLACK]]),
    "LA": (lambda: Image.fromarray(np.array([[[77, 0], [9, 255]]] * 2, np.uint8), mode="LA"),
           ".png", [[(77,) * 3, (9,) * 3]] * 2),
    # Alpha is dropped, not composited: a fully transparent pixel keeps its stored colour.
    "RGBA": (lambda: Image.fromarray(np.array([[[10, 20, 30, 0], [1, 2, 3, 255]]] * 2, np.uint8)),
             ".png", [[(10, 20, 30), (1, 2, 3)]] * 2),
    "CMYK": (lambda: Image.new("CMYK", (2, 2), (0, 255, 255, 0)), ".tif", [[(255, 0, 0)] * 2] * 2),
}  # fmt: skip


@pytest.mark.parametrize("mode", sorted(EIGHT_BIT_CASES))
def test_eight_bit_modes_decode_to_their_colours(tmp_path, mode):
    make, suffix, expected = EIGHT_BIT_CASES[mode]
    path = tmp_path / f"image{suffix}"
    make().save(path)
    assert Image.open(path).mode == mode
    rgb = read_rgb(path)
    assert rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb, np.array(expected, dtype=np.uint8))


def test_exif_rotated_jpeg_is_read_as_a_viewer_shows_it(tmp_path):
    path = rotated_jpeg(tmp_path / "phone.jpg")
    shown = read_rgb(path, exif_orientation=True)
    # Orientation 6: the viewer turns the stored image 90° clockwise, so its left half (red)
    # is shown on top.
    assert shown.shape == (32, 16, 3)
    assert shown[4, 8, 0] > 200 and shown[4, 8, 2] < 60
    assert shown[28, 8, 2] > 200 and shown[28, 8, 0] < 60


def test_dataset_reading_keeps_the_stored_orientation_its_labels_are_drawn_on(tmp_path):
    stored = read_rgb(rotated_jpeg(tmp_path / "voc.jpg"))
    assert stored.shape == (16, 32, 3) and stored[8, 4, 0] > 200


UNUSUAL = {
    "F": lambda: Image.fromarray(np.array([[0.0, 0.5], [1.0, 2.0]], dtype=np.float32)),
    # CIELAB: converting it needs a colour profile, not a plain channel copy.
    "LAB": lambda: Image.new("LAB", (2, 2), (50, 0, 0)),
}


@pytest.mark.parametrize("mode", sorted(UNUSUAL))
def test_float_and_unusual_modes_are_refused_naming_file_and_mode(tmp_path, mode):
    path = tmp_path / f"{mode}.tif"
    UNUSUAL[mode]().save(path)
    assert Image.open(path).mode == mode
    with pytest.raises(
        ImageReadError, match=rf"{path.name}: PIL mode {mode} .*convert it to 8-bit"
    ):
        read_rgb(path)


def test_unreadable_files_are_named_and_stay_dataset_and_value_errors(tmp_path):
    broken = tmp_path / "broken.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(broken)
    broken.write_bytes(broken.read_bytes()[:60])
    with pytest.raises(ImageReadError, match=r"cannot read image .*broken\.png") as caught:
        read_rgb(broken)
    assert isinstance(caught.value, DatasetError) and isinstance(caught.value, ValueError)
    with pytest.raises(FileNotFoundError, match=r"nowhere\.png"):
        read_rgb(tmp_path / "nowhere.png")


def test_mask_file_object_is_every_non_zero_index_grey_level_or_colour(tmp_path):
    values = np.array([[0, 15, 255], [0, 0, 1]], dtype=np.uint8)
    expected = values != 0
    # Palette: the index counts, not its colour (index 0 is painted white here).
    palette = Image.fromarray(values, mode="P")
    palette.putpalette([255, 255, 255] + [0] * 765)
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 1, 2], rgb[0, 2, 0], rgb[1, 2, 1] = 5, 255, 1  # one non-zero channel is enough
    rgba = np.concatenate([rgb, np.zeros((2, 3, 1), np.uint8)], axis=2)  # alpha 0 is ignored
    rgba[0, 0, 3] = 255  # an opaque black pixel is still background
    la = np.stack([values, np.full_like(values, 255)], axis=2)
    files = {
        "palette.png": palette,
        "grey.png": Image.fromarray(values),
        "rgb.png": Image.fromarray(rgb),
        "rgba.png": Image.fromarray(rgba),
        "la.png": Image.fromarray(la, mode="LA"),
        "deep.png": Image.fromarray(values.astype(np.uint16) * 257),
    }
    for name, image in files.items():
        image.save(tmp_path / name)
        mask = read_binary_mask(tmp_path / name)
        assert mask.dtype == bool, name
        np.testing.assert_array_equal(mask, expected, err_msg=name)


def test_mask_file_of_a_mode_without_one_meaning_of_non_zero_is_refused(tmp_path):
    path = tmp_path / "mask.tif"
    Image.new("CMYK", (4, 4), (0, 0, 0, 0)).save(path)
    with pytest.raises(ImageReadError, match=r"mask\.tif: PIL mode CMYK .*greyscale, palette"):
        read_binary_mask(path)
