"""The disk feature cache: build, resume, refuse what does not fit, and train from it."""

import errno
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from vrpsam.cache import CacheError, CacheMismatchError, FeatureCache, build_cache
from vrpsam.cache.build import plan_shards
from vrpsam.cache.run import build_run_cache, open_caches
from vrpsam.cache.scope import scope
from vrpsam.cache.store import MANIFEST, shard_name

SIGNATURE = {"format": 1, "kind": "sam", "sam": "tiny", "dtype": "float16", "image_size": 16}


def fake_features(image_id: str) -> dict[str, torch.Tensor]:
    """Deterministic per-id features, so builds can be compared byte for byte."""
    seed = int.from_bytes(image_id.encode(), "little") % (2**31)
    return {"sam": torch.randn(4, 3, 3, generator=torch.Generator().manual_seed(seed))}


IDS = [f"img{i:03d}" for i in range(10)]


def build(folder, ids=IDS, **kw):
    kw.setdefault("compute", fake_features)
    return build_cache(folder, signature=SIGNATURE, ids=ids, keys=("sam",), shard_size=4,
                       show_progress=False, **kw)  # fmt: skip


def test_build_then_read_gives_the_computed_features_in_fp16(tmp_path):
    report = build(tmp_path / "sam")
    assert report.images == 10 and report.computed_shards == 3
    cache = FeatureCache(folder=tmp_path / "sam", expected=SIGNATURE)
    got = cache.get(["img007", "img002"], "sam")
    want = torch.stack([fake_features("img007")["sam"], fake_features("img002")["sam"]])
    assert got.dtype == torch.float16
    torch.testing.assert_close(got.float(), want.half().float())
    assert cache.nbytes() == report.nbytes > 0


def test_a_killed_build_resumes_and_gives_the_same_bytes(tmp_path):
    build(tmp_path / "whole")
    calls = []

    def dies_after_five(image_id):
        calls.append(image_id)
        if len(calls) > 5:
            raise KeyboardInterrupt  # the build is killed in the middle of the second shard
        return fake_features(image_id)

    with pytest.raises(KeyboardInterrupt):
        build(tmp_path / "resumed", compute=dies_after_five)
    folder = tmp_path / "resumed"
    assert not (folder / MANIFEST).exists()  # an unfinished cache is never readable
    assert not list(folder.glob("*.tmp"))  # no half-written shard left behind
    with pytest.raises(CacheError, match="did not finish"):
        FeatureCache(folder=folder, expected=SIGNATURE)
    report = build(folder)
    assert report.reused_shards == 1 and report.computed_shards == 2
    for shard in sorted((tmp_path / "whole").glob("shard-*")):
        assert (folder / shard.name).read_bytes() == shard.read_bytes()


def test_another_signature_is_refused_with_the_differences(tmp_path):
    build(tmp_path / "sam")
    other = {**SIGNATURE, "sam": "vit_b"}
    mismatch = "model.sam: 'tiny' \\(cache\\) vs 'vit_b' \\(this run\\)"
    with pytest.raises(CacheMismatchError, match=mismatch):
        FeatureCache(folder=tmp_path / "sam", expected=other)
    with pytest.raises(CacheMismatchError, match=r"data.image_size: 16 \(cache\) vs 32 \(this"):
        FeatureCache(folder=tmp_path / "sam", expected={**SIGNATURE, "image_size": 32})
    with pytest.raises(CacheMismatchError):  # nor is it extended for another model
        build_cache(tmp_path / "sam", signature=other, ids=IDS, compute=fake_features,
                    keys=("sam",), show_progress=False)  # fmt: skip


def test_a_truncated_shard_is_named_not_read(tmp_path):
    build(tmp_path / "sam")
    shard = tmp_path / "sam" / shard_name(IDS[:4])
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(CacheError, match=r"truncated.*vrpsam-cache"):
        FeatureCache(folder=tmp_path / "sam", expected=SIGNATURE)
    report = build(tmp_path / "sam")  # the build notices it and recomputes that shard
    assert report.computed_shards == 1
    FeatureCache(folder=tmp_path / "sam", expected=SIGNATURE).get(IDS[:4], "sam")


def test_an_image_added_after_the_build_is_a_clear_error_then_added(tmp_path):
    build(tmp_path / "sam")
    cache = FeatureCache(folder=tmp_path / "sam", expected=SIGNATURE)
    with pytest.raises(CacheError, match=r"'new001' is not in the feature cache.*vrpsam-cache"):
        cache.get(["img001", "new001"], "sam")
    report = build(tmp_path / "sam", ids=[*IDS, "new001"])
    assert report.computed_shards == 1 and report.images == 11
    torch.testing.assert_close(
        FeatureCache(folder=tmp_path / "sam", expected=SIGNATURE).get(["new001"], "sam")[0].float(),
        fake_features("new001")["sam"].half().float(),
    )


def test_a_read_only_cache_folder_is_refused_for_building_but_readable(tmp_path, monkeypatch):
    folder = tmp_path / "sam"
    build(folder)
    os.chmod(folder, 0o555)
    if os.geteuid() == 0:  # root ignores permissions: make the folder's file system read-only
        real_open = os.open

        def read_only(path, flags, *args, **kwargs):
            if str(path).startswith(str(folder)) and flags & (os.O_WRONLY | os.O_CREAT):
                raise OSError(errno.EROFS, "Read-only file system", str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", read_only)
    try:
        with pytest.raises(CacheError, match=r"cannot write the feature cache.*writable"):
            build(folder, ids=[*IDS, "new001"])
        assert len(FeatureCache(folder=folder, expected=SIGNATURE).get(IDS, "sam")) == 10
    finally:
        os.chmod(folder, 0o755)


def test_ranks_build_disjoint_shards_and_rank_zero_writes_the_manifest(tmp_path):
    import threading

    computed = {0: [], 1: []}

    def builder(rank):
        def compute(image_id):
            computed[rank].append(image_id)
            return fake_features(image_id)

        build(tmp_path / "sam", compute=compute, rank=rank, world_size=2, wait_seconds=60)

    threads = [threading.Thread(target=builder, args=(r,)) for r in (1, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not set(computed[0]) & set(computed[1])
    assert sorted(computed[0] + computed[1]) == IDS
    assert len(FeatureCache(folder=tmp_path / "sam", expected=SIGNATURE)) == 10


def test_a_cache_built_for_another_fold_names_both_folds_and_the_fix(tmp_path):
    folder = tmp_path / "sam"
    build(folder, built_for=scope(2, 1, ["train", "val", "test"]))
    with pytest.raises(CacheMismatchError) as refused:
        FeatureCache(folder=folder, expected=SIGNATURE, run=scope(1, 1))
    message = str(refused.value)
    assert "built for fold 2 and this run asks for fold 1 (data.fold=1)" in message
    assert f"vrpsam-cache with this run's settings (data.fold=1, cache.dir={tmp_path};" in message
    assert "dataset changed" not in message
    # Building fold 1 into the same folder records it (its images are there already).
    assert build(folder, built_for=scope(1, 1, ["test"])).computed_shards == 0
    cache = FeatureCache(folder=folder, expected=SIGNATURE, run=scope(1, 5))
    with pytest.raises(CacheError, match="this run asks for fold 1 with shot 5") as missing:
        cache.get(["new001"], "sam")
    assert "built for fold 1 with shot 1 (splits test); fold 2 with shot 1" in str(missing.value)


def test_the_plan_depends_only_on_the_ids():
    assert plan_shards(reversed(IDS), 4) == plan_shards(IDS + IDS[:3], 4)


# --- with the real model and data ---------------------------------------------------------------


@pytest.fixture
def cached_cfg(make_cfg, frozen_files, tmp_path):
    sam_file, backbone_file = frozen_files

    def make(*overrides, name="train", run="run"):
        return make_cfg(
            name,
            f"model.sam_checkpoint={sam_file}",
            f"model.backbone_checkpoint={backbone_file}",
            f"cache.dir={tmp_path / 'cache'}",
            *overrides,
            run=run,
        )

    return make


CACHED_TRAINING = ["cache.backbone=true", "cache_features=none", "test_after_training=false",
                   "data.train_episodes_per_epoch=8", "data.val_episodes=4"]  # fmt: skip


def train_from_the_caches(cached_cfg):
    """Build the SAM and backbone caches, then train from them: (metrics, objects)."""
    from vrpsam.engine.training import train

    reports = build_run_cache(cached_cfg(*CACHED_TRAINING, name="build_cache"), log=lambda _: None)
    assert {r.folder.name for r in reports} == {"sam", "backbone"}
    cached, objects = train(cached_cfg(*CACHED_TRAINING, run="cached"))
    module = objects["module"]
    assert set(module.store.disk) == {"sam", "backbone"}
    assert type(module.model.sam.sam.image_encoder).__name__ == "CachedImageEncoder"
    return cached, objects


def test_training_reads_its_frozen_features_from_the_caches(cached_cfg):
    """A step, validation and the test before training from the SAM and backbone caches; the
    same run without them, for the same numbers: the slow test below."""
    cached, objects = train_from_the_caches(cached_cfg)
    assert torch.isfinite(objects["trainer"].callback_metrics["train/loss"])
    assert cached["steps"] == 1 and 0 <= cached["val_last"]["miou"] <= 100
    assert cached["test_before_training"]["episodes"] == 4


@pytest.mark.slow
def test_cached_and_uncached_training_give_the_same_losses_and_metrics(cached_cfg):
    from vrpsam.engine.training import train

    cached, objects = train_from_the_caches(cached_cfg)
    plain, plain_objects = train(cached_cfg("cache.dir=null", *CACHED_TRAINING[1:], run="plain"))
    # fp16 storage of the frozen features is the only difference.
    loss = float(objects["trainer"].callback_metrics["train/loss"])
    plain_loss = float(plain_objects["trainer"].callback_metrics["train/loss"])
    assert abs(loss - plain_loss) < 0.02 * max(1.0, abs(plain_loss))
    assert abs(cached["val_last"]["miou"] - plain["val_last"]["miou"]) < 2.0


def test_a_cache_of_another_sam_checkpoint_is_refused_by_training(cached_cfg, tmp_path):
    from vrpsam.engine.training import train

    build_run_cache(cached_cfg(name="build_cache"), log=lambda _: None)
    other = tmp_path / "other_sam.pth"
    state = torch.load(cached_cfg().model.sam_checkpoint, weights_only=True)
    state["mask_decoder.iou_token.weight"] = state["mask_decoder.iou_token.weight"] + 1
    torch.save(state, other)
    with pytest.raises(CacheMismatchError, match=r"model.sam_checkpoint: a weight file with sha"):
        train(cached_cfg(f"model.sam_checkpoint={other}"))
    with pytest.raises(CacheMismatchError, match=r"data.image_size: 128 \(cache\) vs 96 \(this"):
        open_caches(cached_cfg("data.image_size=96"))
    with pytest.raises(CacheMismatchError, match=r"built for fold 0 and this run asks for fold 1"):
        open_caches(cached_cfg("data.fold=1"))  # vrpsam-cache recorded the fold it was built for
    # The shot does not change the cached features: a 5-shot evaluation reads the 1-shot cache.
    # (An evaluation takes the interpolation from its checkpoint; none here.)
    five_shot = cached_cfg("eval.shot=5", "data.interpolation=bilinear", name="eval")
    assert open_caches(five_shot)["sam"].run["shot"] == 5


def test_random_weights_cannot_be_cached(make_cfg, tmp_path):
    cfg = make_cfg("build_cache", f"cache.dir={tmp_path / 'c'}")
    with pytest.raises(CacheError, match=r"model.sam_checkpoint"):
        build_run_cache(cfg, log=lambda _: None)


def test_cache_cli_with_random_weights_prints_the_message_alone(
    synthetic_voc_root, tmp_path, monkeypatch, capsys
):
    from vrpsam.cli import cache as cache_cli

    monkeypatch.setattr(sys, "argv", ["vrpsam-cache", "experiment=demo",
                                      f"data.root={synthetic_voc_root}",
                                      f"cache.dir={tmp_path / 'c'}",
                                      f"hydra.run.dir={tmp_path / 'h'}"])  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        cache_cli.main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "error: a feature cache is tied to the SAM weight file" in err
    assert "model.sam_checkpoint=<file>" in err and "Traceback" not in err


def test_cache_cli_prints_the_size_estimate_and_the_size_on_disk(cached_cfg, capsys):
    build_run_cache(cached_cfg(name="build_cache"))
    out = capsys.readouterr().out
    assert "MiB ≈" in out and "GiB on disk" in out and "shards computed" in out
    manifest = json.loads((Path(cached_cfg().cache.dir) / "sam" / MANIFEST).read_text())
    assert manifest["signature"]["sam"] == "tiny"
    shutil.rmtree(cached_cfg().cache.dir)


def test_a_cache_of_another_dataset_folder_is_refused_naming_data_root(tmp_path):
    # Image ids repeat across trees (two synthetic seeds): features of one tree must not serve
    # another's images.
    from omegaconf import OmegaConf

    from vrpsam.cache.signature import cache_signature, check_signature

    weights = tmp_path / "sam.pth"
    weights.write_bytes(b"weights")  # hashed only
    model = OmegaConf.create(
        {"sam": "tiny", "sam_kwargs": {"image_size": 16}, "sam_checkpoint": str(weights)}
    )
    data = {"dataset": "pascal", "image_size": 16, "root": str(tmp_path / "seed0")}
    built = cache_signature("sam", model, OmegaConf.create(data), "float16")
    run = cache_signature("sam", model, OmegaConf.create({**data, "root": str(tmp_path / "seed1")}),
                          "float16")  # fmt: skip
    check_signature(built, dict(built), tmp_path)  # the same tree is accepted
    with pytest.raises(CacheMismatchError, match=r"data\.root: .*seed0.* \(cache\) vs .*seed1"):
        check_signature(built, run, tmp_path)
