"""scripts/summarize_folds.py: the paper-layout table from per-fold eval.json files."""

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
