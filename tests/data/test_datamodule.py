"""FewShotDataModule: worker-independent batches, episode list files, rank sharding."""

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from fakes import make_source

from vrpsam.data.datamodule import FewShotDataModule
from vrpsam.data.episodes import load_episodes


def _sources():
    return {
        "train": make_source(split="train", images_per_class=4),
        "val": make_source(split="val", images_per_class=3),
        "test": make_source(split="test", images_per_class=4),
    }


def _datamodule(**kwargs):
    options = dict(
        sources=_sources(),
        shot=1,
        annotation="scribble",
        image_size=32,
        batch_size=3,
        seed=0,
        train_episodes_per_epoch=7,
        val_episodes=8,
        test_episodes=9,
    )
    options.update(kwargs)
    return FewShotDataModule(**options)


def _batches(loader, epoch=None):
    if epoch is not None:
        loader.sampler.set_epoch(epoch)
    return list(loader)


def _assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            if isinstance(x[key], torch.Tensor):
                torch.testing.assert_close(x[key], y[key], rtol=0, atol=0)
            elif key == "target_mask_original":
                for p, q in zip(x[key], y[key], strict=True):
                    assert torch.equal(p, q)
            else:
                assert x[key] == y[key]


def test_batches_do_not_depend_on_the_number_of_workers():
    single = _datamodule(num_workers=0)
    multi = _datamodule(num_workers=2)
    for dm in (single, multi):
        dm.setup("fit")
        dm.setup("test")
    for epoch in (0, 1):
        _assert_same_batches(
            _batches(single.train_dataloader(), epoch), _batches(multi.train_dataloader(), epoch)
        )
    _assert_same_batches(_batches(single.val_dataloader()), _batches(multi.val_dataloader()))
    _assert_same_batches(_batches(single.test_dataloader()), _batches(multi.test_dataloader()))


def test_more_workers_than_cpus_are_capped_at_the_cpus(monkeypatch):
    from vrpsam.data import datamodule

    monkeypatch.setattr(datamodule, "available_cpus", lambda: 3)
    assert _datamodule(num_workers=8).num_workers == 3
    assert _datamodule(num_workers=2).num_workers == 2
    assert _datamodule(num_workers=8, persistent_workers=True).persistent_workers


def test_training_epochs_differ():
    dm = _datamodule()
    dm.setup("fit")
    first = _batches(dm.train_dataloader(), 0)
    second = _batches(dm.train_dataloader(), 1)
    ids = [[i for b in batches for i in b["target_id"]] for batches in (first, second)]
    assert len(ids[0]) == 7 and ids[0] != ids[1]


def test_test_list_is_written_once_then_loaded(tmp_path):
    path = tmp_path / "episodes" / "fake_fold0_1shot_seed0.json"
    dm = _datamodule(test_episode_list=path)
    dm.setup("test")
    written = path.read_bytes()
    episodes, meta = load_episodes(path)
    assert meta["n"] == 9 and meta["seed"] == 0 and meta["dataset"] == "fake"
    assert dm.test_dataset.episodes == episodes
    # A later run with another seed still uses the stored list and its seed.
    again = _datamodule(test_episode_list=path, test_seed=5, test_episodes=3)
    again.setup("test")
    assert again.test_dataset.episodes == episodes and again.test_dataset.seed == 0
    assert path.read_bytes() == written


def test_a_list_of_another_shot_is_refused(tmp_path):
    path = tmp_path / "list.json"
    _datamodule(test_episode_list=path).setup("test")
    with pytest.raises(ValueError, match="shot"):
        _datamodule(test_episode_list=path, shot=2).setup("test")


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_share_val_and_test_episodes_without_duplicates(world_size):
    full = _datamodule()
    full.setup("test")
    full.setup("validate")
    for stage, attribute in (("test", "test_dataset"), ("validate", "val_dataset")):
        reference = getattr(full, attribute)
        seen = []
        for rank in range(world_size):
            dm = _datamodule()
            dm.trainer = SimpleNamespace(global_rank=rank, world_size=world_size)
            dm.setup(stage)
            dataset = getattr(dm, attribute)
            seen += [(i, dataset.episodes[j]) for j, i in enumerate(dataset.episode_indices)]
        assert sorted(seen, key=lambda pair: pair[0]) == list(enumerate(reference.episodes))


def test_missing_val_split_skips_validation():
    sources = _sources()

    def factory(split):
        if split == "val":
            raise FileNotFoundError("no val list")
        return sources[split]

    dm = FewShotDataModule(source_factory=factory, image_size=32, train_episodes_per_epoch=3)
    dm.setup("fit")
    assert dm.val_dataset is None and dm.val_dataloader() == []


class _Recorder(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen = {}

    def training_step(self, batch, batch_idx):
        self.seen.setdefault(self.current_epoch, []).extend(batch["target_id"])
        return (self.weight * batch["target_image"].mean()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.filterwarnings("ignore:You passed in a `val_dataloader`")
def test_lightning_sets_the_training_epoch():
    module = _Recorder()
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    sources = {"train": _sources()["train"]}
    trainer.fit(module, datamodule=_datamodule(sources=sources, annotation="box"))
    assert len(module.seen[0]) == len(module.seen[1]) == 7
    assert module.seen[0] != module.seen[1]
