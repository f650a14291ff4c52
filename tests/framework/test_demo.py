"""The demo: its quick setting end to end, reproducible to the bit; reused outputs keyed by what
shapes them; the full setting's figures against the ones recorded in the repository (slow)."""

import json

import pytest
import torch

from vrpsam.demo import keys, run_demo
from vrpsam.demo.settings import EXPECTED_FILE, THREADS


def test_quick_demo_runs_end_to_end_and_its_figures_are_reproducible(tmp_path, capsys):
    threads_before = torch.get_num_threads()
    first = run_demo(["--setting", "quick", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "before training" in printed and "not paper results" in printed
    assert "predicted foreground on objects of other classes" in printed
    for name in ("report.md", "figures.json", "training_curve.png", "overlays.png"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "export" / "model.safetensors").is_file()
    assert len(list((tmp_path / "predictions").glob("*_overlay.png"))) >= 1
    report = (tmp_path / "report.md").read_text()
    for method in ("GP-SAM |", "PerSAM |", "PerSAM-F |", "Matcher (", "VRP-SAM (trained) |"):
        assert f"| {method}" in report
    assert set(first["methods"]) >= {"untrained@16", "vrpsam@16", "gpsam@2", "matcher_small@1"}
    assert first["seed"] == 0
    assert first["environment"]["libraries"]["torch"] and first["environment"]["cpu_capability"]
    # Computed with the demo's thread count whatever the machine has; the caller's is restored.
    assert first["environment"]["threads"] == THREADS
    assert torch.get_num_threads() == threads_before

    def weights():
        return sorted(p.relative_to(tmp_path) for p in (tmp_path / "standins").rglob("*.pth"))

    fitted = weights()
    # Again in the same folder: data and stand-ins reused, every figure the same to the bit.
    again = run_demo(["--setting", "quick", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "reusing stand-in weights" in printed and "reusing synthetic" in printed
    assert weights() == fitted
    first.pop("seconds"), again.pop("seconds")
    assert again == first


def test_a_thread_count_below_one_is_refused(capsys):
    with pytest.raises(SystemExit):
        run_demo(["--setting", "quick", "--threads", "0"])
    assert "--threads must be at least 1, got 0" in capsys.readouterr().err


def test_changed_code_gets_new_data_and_stand_ins_instead_of_reusing_old_ones(
    tmp_path, monkeypatch
):
    from vrpsam.demo import pipeline
    from vrpsam.demo.settings import SETTINGS

    settings = SETTINGS["quick"]
    root, data_key = pipeline.ensure_data(tmp_path, settings, log=lambda _: None)
    assert pipeline.ensure_data(tmp_path, settings, log=lambda _: None)[0] == root
    fingerprint = keys.code_fingerprint
    monkeypatch.setattr(pipeline, "code_fingerprint", lambda modules: fingerprint(modules) + "x")
    changed, changed_key = pipeline.ensure_data(tmp_path, settings, log=lambda _: None)
    assert changed != root and changed_key != data_key
    assert sorted(p.name for p in tmp_path.glob("synthetic_voc_*")) == sorted(
        [root.name, changed.name]
    )


def test_another_seed_draws_another_tree(tmp_path):
    from vrpsam.demo import pipeline
    from vrpsam.demo.settings import SETTINGS

    settings = SETTINGS["quick"]
    root, _ = pipeline.ensure_data(tmp_path, settings, log=lambda _: None)
    other, _ = pipeline.ensure_data(tmp_path, settings, log=lambda _: None, seed=1)
    assert other != root
    first = sorted(p.read_bytes() for p in (root / "SegmentationClassAug").glob("*.png"))
    second = sorted(p.read_bytes() for p in (other / "SegmentationClassAug").glob("*.png"))
    assert first != second


def test_code_fingerprint_follows_the_source_and_library_versions(monkeypatch):
    import torch

    base = keys.code_fingerprint(keys.DATA_CODE)
    assert keys.code_fingerprint(keys.DATA_CODE) == base
    assert keys.code_fingerprint(keys.STANDIN_CODE) != base
    monkeypatch.setattr(torch, "__version__", "0.0.0")
    assert keys.code_fingerprint(keys.DATA_CODE) != base


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 8 to 16 minutes on 2 cores, more on a busy machine
def test_full_demo_from_an_empty_folder_gives_the_recorded_figures(tmp_path):
    """The figures the README quotes, within ±2 mIoU."""
    expected = json.loads(EXPECTED_FILE.read_text())
    figures = run_demo(["--out", str(tmp_path)])
    for name in ("before", "after"):
        assert figures[name] == pytest.approx(expected[name], abs=2.0), name
    for method, miou in expected["methods"].items():
        assert figures["methods"][method] == pytest.approx(miou, abs=2.0), method
