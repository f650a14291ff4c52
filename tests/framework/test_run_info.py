"""What a checkpoint records about its run, from every dataset config."""

from __future__ import annotations

import pytest

from vrpsam.engine.training import run_info


@pytest.mark.parametrize("data", ["pascal5i", "coco20i", "fss1000", "lvis92i"])
def test_run_info_of_a_dataset_config_keeps_its_source_options(make_cfg, data):
    cfg = make_cfg("train", f"data={data}")
    info = run_info(cfg)
    assert info["dataset"] == cfg.data.dataset
    assert info["source_options"] == dict(cfg.data.source_options)
