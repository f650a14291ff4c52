"""The DAVIS reader, the synthetic DAVIS writer and the tree check."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vrpsam.data.davis import DavisSource
from vrpsam.data.synthetic_davis import write_davis_tree
from vrpsam.data.verify_davis import verify_davis

SMALL = {"sequences": 2, "frames": 4, "size": (48, 64)}


@pytest.fixture(scope="module")
def davis_root(tmp_path_factory) -> Path:
    return write_davis_tree(tmp_path_factory.mktemp("davis") / "DAVIS", seed=0, **SMALL)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_the_same_seed_writes_byte_identical_trees_and_another_seed_does_not(tmp_path, davis_root):
    again = write_davis_tree(tmp_path / "again", seed=0, **SMALL)
    other = write_davis_tree(tmp_path / "other", seed=1, **SMALL)
    assert _files(again) == _files(davis_root)
    assert _files(other) != _files(davis_root)
    with pytest.raises(FileExistsError, match="not empty"):
        write_davis_tree(again, seed=0, **SMALL)


def test_reader_lists_sequences_frames_and_first_frame_objects(davis_root):
    source = DavisSource(davis_root)
    assert source.sequences == ("seq000", "seq001")
    assert source.frames("seq000") == ("00000", "00001", "00002", "00003")
    frame = source.load_frame("seq000", "00000")
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
    label = source.load_label("seq000", "00000")
    assert label.shape == (48, 64) and label.dtype == np.uint8
    with Image.open(source.label_path("seq000", "00000")) as png:
        assert png.mode == "P"  # palette indices are the ids, not the rendered colours
    assert set(np.unique(label)) == {0, *source.objects("seq000")}
    assert len(source.objects("seq000")) >= 2


def test_an_object_of_the_first_sequence_leaves_the_frame(davis_root):
    source = DavisSource(davis_root)
    leaving = source.objects("seq000")[-1]
    assert (source.load_objects("seq000", "00000") == leaving).any()
    assert not (source.load_objects("seq000", "00003") == leaving).any()


def test_davis_2016_is_one_object_whatever_the_ids(davis_root, tmp_path):
    assert DavisSource(davis_root, year="2016").objects("seq000") == (1,)
    single = write_davis_tree(tmp_path / "d16", year="2016", **SMALL)
    source = DavisSource(single, year="2016")
    assert set(np.unique(source.load_label("seq000", "00000"))) == {0, 255}  # as DAVIS-2016
    assert set(np.unique(source.load_objects("seq000", "00000"))) == {0, 1}


def test_missing_folders_are_named_with_the_fix(tmp_path, davis_root):
    with pytest.raises(FileNotFoundError, match=r"DAVIS folder not found.*data\.root"):
        DavisSource(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"ImageSets/2017/train\.txt"):
        DavisSource(davis_root, split="train")
    with pytest.raises(ValueError, match="year"):
        DavisSource(davis_root, year="2019")


def test_verify_passes_a_sound_tree_and_counts_it(davis_root):
    report = verify_davis(davis_root, full=True)
    assert report.ok, report.format()
    (row,) = report.rows
    source = DavisSource(davis_root)
    objects = sum(len(source.objects(s)) for s in source.sequences)
    assert row[:5] == ("2017", "val", 2, 8, objects)
    assert "sequences" in report.format()


def test_verify_names_a_missing_annotation_and_a_size_mismatch(davis_root, tmp_path):
    import shutil

    root = Path(shutil.copytree(davis_root, tmp_path / "DAVIS"))
    missing = root / "Annotations" / "480p" / "seq000" / "00002.png"
    missing.unlink()
    resized = root / "Annotations" / "480p" / "seq001" / "00001.png"
    with Image.open(resized) as png:
        png.resize((32, 24), Image.NEAREST).save(resized)
    report = verify_davis(root)
    assert not report.ok
    text = "\n".join(report.problems)
    assert f"annotation not found: {missing}" in text
    assert f"annotation {resized} is 32×24 but its frame" in text
