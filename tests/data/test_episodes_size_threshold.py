"""``vrpsam-data episodes`` hands each reader its own size-threshold keyword (min_pixels for VOC,
min_area for COCO and LVIS, none for FSS-1000)."""

from __future__ import annotations

import pytest

from vrpsam.cli.data import main as data_main
from vrpsam.data.episodes import load_episodes
from vrpsam.data.synthetic_fss import write_fss_tree
from vrpsam.data.synthetic_lvis import write_lvis_tree


@pytest.mark.parametrize("threshold", [[], ["--min-pixels", "50"]])
def test_lvis92i_episodes_are_written_with_and_without_min_pixels(tmp_path, threshold):
    root = write_lvis_tree(tmp_path / "lvis", categories=20, images=(60, 40), size=96)
    out = tmp_path / "episodes.json"
    argv = ["episodes", "--dataset", "lvis92i", "--root", str(root), "--fold", "7", "--n", "6",
            "--out", str(out), *threshold]  # fmt: skip
    assert data_main(argv) == 0
    episodes, meta = load_episodes(out)
    assert len(episodes) == 6 and meta["fold"] == 7


def test_min_pixels_for_fss1000_is_refused_with_the_fix(tmp_path, capsys):
    root = write_fss_tree(tmp_path / "fss", classes=(4, 2, 2), size=64)
    argv = ["episodes", "--dataset", "fss1000", "--root", str(root), "--fold", "0", "--n", "4",
            "--out", str(tmp_path / "e.json"), "--min-pixels", "50"]  # fmt: skip
    assert data_main(argv) == 2
    assert "fss1000 has no size threshold" in capsys.readouterr().err
