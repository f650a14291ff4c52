"""The scripts' pure parts: summarize_folds.py's paper-layout table, bench_semantic.py's inputs."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "summarize_folds.py"


def load_script():
    spec = importlib.util.spec_from_file_location("summarize_folds", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fold_table_has_one_column_per_fold_and_the_mean():
    results = [
        {"method": "vrpsam", "shot": 1, "annotation": "mask", "fold": f, "miou": m, "fbiou": 70.0,
         "protocol": "official", "protocol_changes": {}}
        for f, m in enumerate([73.9, 78.3, 70.6, 65.0])
    ]  # fmt: skip
    table = load_script().fold_table(results)
    row = table.splitlines()[2]
    assert row == "| vrpsam | official | 1 | mask | 73.9 | 78.3 | 70.6 | 65.0 | 72.0 | 70.0 |"


def test_a_protocol_with_changed_switches_gets_its_own_marked_row():
    base = {"shot": 1, "annotation": "mask", "fold": 0, "miou": 50.0, "fbiou": 60.0}
    table = load_script().fold_table([
        {**base, "protocol": "default", "protocol_changes": {}},
        {**base, "protocol": "default", "protocol_changes": {"score_original_size": False}},
    ])  # fmt: skip
    assert "| vrpsam | default | 1 |" in table and "| vrpsam | default* | 1 |" in table


def test_missing_folds_are_marked_partial():
    table = load_script().fold_table(
        [{"shot": 1, "annotation": "box", "fold": 2, "miou": 50.0, "fbiou": 60.0}]
    )
    assert "| — | — | 50.0 | — |" in table and "(partial)" in table


def test_bench_semantic_finds_the_negatives_bench_outputs_and_refuses_other_folders(
    tmp_path, monkeypatch
):
    import pytest

    scripts = SCRIPT.parent
    monkeypatch.syspath_prepend(str(scripts))
    spec = importlib.util.spec_from_file_location("bench_semantic", scripts / "bench_semantic.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit, match=r"bench_negatives\.py"):
        module.bench_files(tmp_path)
    (tmp_path / "synthetic_voc_600_abc").mkdir()
    (tmp_path / "standins" / "k").mkdir(parents=True)
    for name in ("sam_tiny.pth", "resnet18.pth"):
        (tmp_path / "standins" / "k" / name).write_bytes(b"")
    for share in ("0.0", "0.25"):
        folder = tmp_path / f"negative_share_{share}" / "run" / "checkpoints"
        folder.mkdir(parents=True)
        (folder / "best.ckpt").write_bytes(b"")
    files = module.bench_files(tmp_path)
    assert files["vrpsam"].parts[-4] == "negative_share_0.0"
    assert files["vrpsam_negatives"].parts[-4] == "negative_share_0.25"
    assert files["backbone"].name == "resnet18.pth"
