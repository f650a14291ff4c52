"""The demo's smallest setting end to end: data, stand-ins, training, before/after test, export."""

import json

from vrpsam.demo import main


def test_quick_demo_runs_end_to_end_and_reuses_its_stand_ins(tmp_path, capsys):
    main(["--setting", "quick", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "before training" in printed and "not paper results" in printed
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test_before_training"]["episodes"] == metrics["test"]["episodes"] == 16
    assert (tmp_path / "export" / "model.safetensors").is_file()
    assert len(list((tmp_path / "predictions").glob("*_overlay.png"))) >= 1
    weights = sorted(p.name for p in (tmp_path / "standins").glob("*.pth"))
    main(["--setting", "quick", "--out", str(tmp_path)])
    assert "reusing stand-in weights" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "standins").glob("*.pth")) == weights
