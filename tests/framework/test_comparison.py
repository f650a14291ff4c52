"""The comparison table and chart over methods × label types × folds."""

import pytest

from vrpsam.reports.comparison import comparison_chart, comparison_table


def result(method, annotation, fold, miou, **extra):
    return {"method": method, "annotation": annotation, "fold": fold, "miou": miou,
            "dataset": "pascal", "shot": 1, "seeds": [0], "episodes": 8,
            "seconds_per_episode": 0.5, **extra}  # fmt: skip


RESULTS = [
    result("persam", "mask", 0, 30.0),
    result("persam", "mask", 1, 40.0),
    result("vrpsam", "mask", 0, 60.0),
    result("vrpsam", "box", 0, 50.0),
    result("gpsam", "mask", 1, 20.0),
]


def test_table_has_a_row_per_method_in_paper_order_with_fold_means():
    table = comparison_table(RESULTS)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split("|")[1].strip() for r in rows] == ["method", "vrpsam", "gpsam", "persam"]
    header = [c.strip() for c in rows[0].split("|")[1:-1]]
    assert header == ["method", "box f0", "box f1", "box mean",
                      "mask f0", "mask f1", "mask mean", "s/episode"]  # fmt: skip
    persam = [c.strip() for c in rows[3].split("|")[1:-1]]
    assert persam[4:7] == ["30.0", "40.0", "35.0"]
    assert persam[1:4] == ["—", "—", "—"]


def test_chart_is_written(tmp_path):
    comparison_chart(RESULTS, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"


def test_results_of_other_episodes_are_refused():
    with pytest.raises(ValueError, match="same episodes"):
        comparison_table([*RESULTS, result("matcher", "mask", 0, 10.0, shot=5)])


VIDEO_RUN = {"method": "persam", "dataset": "davis2017", "fold": 0, "shot": 1, "annotation": "mask",
             "split": "val", "jf_mean": 61.0, "seconds_per_frame": 0.25}  # fmt: skip


def test_benchmark_table_averages_folds_and_reports_j_and_f_for_video():
    from vrpsam.reports.comparison import benchmark_table

    runs = [
        {**result("matcher", "mask", 0, 30.0), "dataset": "lvis92i"},
        {**result("matcher", "mask", 1, 40.0), "dataset": "lvis92i", "seconds_per_episode": 1.5},
        {**result("persam", "mask", 0, 80.0), "dataset": "fss1000"},
        VIDEO_RUN,
    ]
    table = benchmark_table(runs)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    header = [c.strip() for c in rows[0].split("|")[1:-1]]
    assert header == ["method", "davis2017 J&F", "s/frame", "fss1000 mIoU", "s/episode",
                      "lvis92i mIoU", "s/episode"]  # fmt: skip
    cells = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]] for r in rows[1:]}
    assert cells["matcher"] == ["—", "—", "—", "—", "35.0", "1.000"]
    assert cells["persam"] == ["61.0", "0.250", "80.0", "0.500", "—", "—"]
    assert "lvis92i folds [0, 1]" in table


def test_benchmark_table_refuses_runs_of_one_benchmark_with_different_shots():
    from vrpsam.reports.comparison import benchmark_table

    runs = [result("persam", "mask", 0, 30.0), result("gpsam", "mask", 0, 20.0, shot=5)]
    with pytest.raises(ValueError, match="differ in"):
        benchmark_table(runs)
