"""vrpsam-eval on DAVIS: every method through the real config on a tiny synthetic tree."""

import json
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from vrpsam import build_vrp_sam
from vrpsam.baselines.base import EpisodeInput, FewShotMethod
from vrpsam.baselines.persam import PerSAMF
from vrpsam.conf import CONFIG_DIR
from vrpsam.data.synthetic_davis import write_davis_tree
from vrpsam.engine.evaluation import evaluate
from vrpsam.engine.video_module import VRPSAMVideo
from vrpsam.modeling.sam import build_sam

TINY_SAM = {"image_size": 128, "patch_size": 8, "window_size": 8}
KEYS = {"method", "dataset", "shot", "annotation", "protocol", "switches", "seconds_per_frame",
        "seconds_per_object", "units", "checkpoint", "trained_on", "j_mean", "f_mean",
        "jf_mean", "per_sequence"}  # fmt: skip


@pytest.fixture(scope="module")
def davis_root(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("davis") / "DAVIS"
    return write_davis_tree(out, seed=0, sequences=2, frames=4, size=(64, 96))


def video_cfg(root: Path, out: Path, *overrides: str, data: str = "davis2017", run: str = "run"):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(
            config_name="eval",
            overrides=[
                "experiment=demo",
                f"data={data}",  # after the experiment: wins over its `override /data`
                f"data.root={root}",
                f"paths.output_dir={out}",
                f"paths.run_dir={out / run}",
                "trainer.enable_progress_bar=false",
                *overrides,
            ],
        )


def test_the_data_group_given_after_the_demo_experiment_wins(davis_root, tmp_path):
    cfg = video_cfg(davis_root, tmp_path)
    assert cfg.data.dataset == "davis2017" and cfg.data.video and cfg.data.frame_batch == 8
    assert cfg.data.image_size == 128  # the demo's size still applies


@pytest.mark.parametrize(
    ("method", "extra", "data"),
    [
        ("vrpsam", [], "davis2017"),
        ("gpsam", ["data.frame_batch=2"], "davis2017"),
        ("persam_f", ["method.iterations=20"], "davis2016"),
    ],
)
def test_every_method_writes_the_davis_reports(davis_root, tmp_path, method, extra, data):
    cfg = video_cfg(davis_root, tmp_path, f"method={method}", *extra, data=data)
    result = evaluate(cfg)
    written = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert written == result and set(written) >= KEYS
    assert written["method"] == method and written["dataset"] == data and written["shot"] == 1
    assert written["units"] == "percent" and written["seconds_per_frame"] > 0
    for key in ("j_mean", "f_mean", "jf_mean"):
        assert 0 <= written[key] <= 100
    assert written["jf_mean"] == pytest.approx((written["j_mean"] + written["f_mean"]) / 2)
    rows = written["per_sequence"]
    assert [r["sequence"] for r in rows] == ["seq000", "seq001"]
    assert all(r["frames"] == 2 for r in rows)  # 4 frames: the first and the last are not scored
    if data == "davis2016":
        assert all(r["objects"] == 1 for r in rows)
    assert written["objects"] == sum(r["objects"] for r in rows)
    assert (tmp_path / "run" / "overlays.png").stat().st_size > 0
    assert "| J&F (%) |" in (tmp_path / "run" / "eval.md").read_text()


class _Counting(FewShotMethod):
    """Predicts the reference mask wherever it is; counts its calls."""

    name = "counting"

    def __init__(self):
        super().__init__()
        self.calls = 0

    def predict(self, episode: EpisodeInput) -> torch.Tensor:
        self.calls += 1
        return episode.reference_masks[0] * 2 - 1


def test_the_default_two_step_interface_predicts_each_target_from_the_stored_reference():
    method = _Counting()
    mask = torch.zeros(1, 16, 16)
    mask[0, 4:8, 4:8] = 1
    state = method.prepare(torch.zeros(1, 3, 16, 16), mask, "mask", seed=3)
    logits = method.predict_targets(state, torch.zeros(5, 3, 16, 16), torch.tensor([[20, 30]] * 5))
    assert logits.shape == (5, 16, 16) and method.calls == 5
    assert torch.equal(logits[2] > 0, mask[0] > 0)


def test_persam_f_fits_once_per_reference_and_predicts_as_per_episode():
    torch.manual_seed(0)
    method = PerSAMF(sam=build_sam("tiny", **TINY_SAM), iterations=10).eval()
    images = torch.randn(3, 3, 128, 128)
    mask = torch.zeros(1, 128, 128)
    mask[0, 30:70, 40:90] = 1
    fits = []
    fit = method.fit
    method.fit = lambda *a: fits.append(1) or fit(*a)
    state = method.prepare(images[:1], mask, "mask", seed=0)
    sizes = torch.tensor([[96, 128], [128, 128]])
    batched = method.predict_targets(state, images[1:], sizes)
    assert len(fits) == 1
    for i in range(2):
        episode = EpisodeInput(images[i + 1], tuple(sizes[i].tolist()), images[:1], mask, "mask")
        torch.testing.assert_close(batched[i], method.predict(episode))


def test_vrpsam_reference_side_once_equals_the_episode_forward():
    model = build_vrp_sam(backbone="resnet18", sam="tiny", sam_kwargs=TINY_SAM).eval()
    runner = VRPSAMVideo(model)
    images = torch.randn(4, 3, 128, 128)
    mask = torch.zeros(1, 128, 128)
    mask[0, 20:60, 30:80] = 1
    sizes = torch.tensor([[96, 128]] * 3)
    with torch.no_grad():
        state = runner.prepare(images[:1], mask, "mask")
        batched = runner.predict_targets(state, images[1:], sizes)
        episodes = model(images[1:], images[:1].expand(3, 1, 3, 128, 128),
                         mask.expand(3, 1, 128, 128), target_sizes=sizes)  # fmt: skip
    torch.testing.assert_close(batched, episodes[:, 0], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="gloo process groups on Linux CI")
def test_two_processes_give_the_one_process_eval_json(davis_root, tmp_path):
    one = evaluate(video_cfg(davis_root, tmp_path, "method=gpsam", run="one"))
    two = evaluate(video_cfg(davis_root, tmp_path, "method=gpsam", "trainer=ddp_cpu",
                             "trainer.devices=2", run="two"))  # fmt: skip
    for key in ("j_mean", "f_mean", "jf_mean", "per_sequence", "objects", "frames_scored"):
        assert two[key] == one[key], key
