"""EpisodeDataset items and collation."""

import numpy as np
import pytest
import torch
from fakes import FakeSource, make_source

from vrpsam.data.base import IGNORE_INDEX, Episode
from vrpsam.data.dataset import EpisodeDataset, EpisodeIndexSampler, collate_episodes
from vrpsam.data.episodes import shard_indices
from vrpsam.data.sampling import TrainingEpisodeSampler, make_test_episodes
from vrpsam.data.transforms import ResizeNormalize

SIZE = 64


def _fixed(annotation="mask", shot=1, n=6, **kwargs):
    source = make_source()
    episodes = make_test_episodes(source, shot=shot, seed=0, n=n)
    return EpisodeDataset(
        source=source,
        transform=ResizeNormalize(size=SIZE),
        annotation=annotation,
        seed=0,
        episodes=episodes,
        **kwargs,
    )


@pytest.mark.parametrize("shot", [1, 3])
def test_items_have_the_documented_keys_shapes_and_dtypes(shot):
    dataset = _fixed(shot=shot)
    item = dataset[1]
    episode = dataset.episodes[1]
    height, width = item["target_mask_original"].shape
    expected = {
        "target_image": ((3, SIZE, SIZE), torch.float32),
        "target_mask": ((SIZE, SIZE), torch.int64),
        "target_mask_original": ((height, width), torch.int64),
        "target_size": ((2,), torch.int64),
        "reference_images": ((shot, 3, SIZE, SIZE), torch.float32),
        "reference_masks": ((shot, SIZE, SIZE), torch.float32),
        "reference_gt_masks": ((shot, SIZE, SIZE), torch.int64),
        "class_id": ((), torch.int64),
        "episode_index": ((), torch.int64),
    }
    for key, (shape, dtype) in expected.items():
        assert tuple(item[key].shape) == shape, key
        assert item[key].dtype == dtype, key
    assert item["target_size"].tolist() == [height, width]
    assert item["class_id"].item() == episode.class_id and item["episode_index"].item() == 1
    assert item["target_id"] == episode.target_id
    assert item["reference_ids"] == episode.reference_ids
    original = dataset.source.load_mask(episode.target_id, episode.class_id)
    np.testing.assert_array_equal(item["target_mask_original"].numpy(), original)
    assert set(item["target_mask"].unique().tolist()) == {0, 1, IGNORE_INDEX}


@pytest.mark.parametrize("annotation", ["point", "scribble", "mask"])
def test_reference_masks_are_binary_annotations_inside_the_ground_truth(annotation):
    dataset = _fixed(annotation=annotation, shot=2)
    for item in (dataset[i] for i in range(len(dataset))):
        masks, gt = item["reference_masks"], item["reference_gt_masks"]
        assert set(masks.unique().tolist()) <= {0.0, 1.0}
        assert (masks.flatten(1).sum(1) > 0).all()
        assert not masks[gt != 1].any()


def test_test_time_point_references_have_twenty_points():
    item = _fixed(annotation="point")[0]
    assert item["reference_masks"].sum().item() == 20


def test_annotations_follow_the_global_episode_index_not_the_shard():
    full = _fixed(annotation="scribble", n=7)
    indices = list(shard_indices(7, 1, 3))
    shard = EpisodeDataset(
        source=full.source,
        transform=full.transform,
        annotation="scribble",
        seed=0,
        episodes=[full.episodes[i] for i in indices],
        episode_indices=indices,
    )
    for local, global_index in enumerate(indices):
        a, b = shard[local], full[global_index]
        assert a["episode_index"].item() == global_index
        torch.testing.assert_close(a["reference_masks"], b["reference_masks"])


def test_small_reference_objects_survive_resizing():
    class TinyObject(FakeSource):
        def load_mask(self, image_id, class_id):
            mask = np.zeros(self._size(image_id), dtype=np.uint8)
            mask[5, 7] = 1  # one pixel: nearest downsampling to 8x8 misses it
            return mask

    source = TinyObject(images={"img000": (1,), "img001": (1,)}, classes=(1,))
    dataset = EpisodeDataset(
        source=source,
        transform=ResizeNormalize(size=8),
        annotation="point",
        episodes=[Episode("img000", 1, ("img001",))],
    )
    assert dataset[0]["reference_masks"].sum().item() >= 1


def test_training_mode_varies_with_epoch_and_accepts_epoch_keys():
    source = make_source(split="train")
    sampler = TrainingEpisodeSampler(source=source, shot=1, seed=0)
    dataset = EpisodeDataset(
        source=source,
        transform=ResizeNormalize(size=SIZE),
        annotation="point",
        sampler=sampler,
        episodes_per_epoch=5,
    )
    assert len(dataset) == 5
    dataset.set_epoch(2)
    by_state = dataset[3]
    by_key = dataset[(2, 3)]
    torch.testing.assert_close(by_state["reference_masks"], by_key["reference_masks"])
    assert by_state["target_id"] == by_key["target_id"]
    epoch_ids = [dataset[(e, i)]["target_id"] for e in (0, 1) for i in range(5)]
    assert epoch_ids[:5] != epoch_ids[5:]
    with pytest.raises(IndexError):
        dataset[5]


def test_index_sampler_yields_this_ranks_keys_for_the_current_epoch():
    samplers = [EpisodeIndexSampler(num_episodes=11, rank=r, world_size=2) for r in range(2)]
    for sampler in samplers:
        sampler.set_epoch(4)
    keys = [list(s) for s in samplers]
    assert len(keys[0]) == len(keys[1]) == 5, "DDP training needs equal steps per rank"
    assert sorted(i for k in keys for _, i in k) == list(range(10))
    assert {e for k in keys for e, _ in k} == {4}


def test_collate_stacks_fixed_fields_and_lists_variable_ones():
    dataset = _fixed(shot=2)
    batch = collate_episodes([dataset[0], dataset[1], dataset[2]])
    assert batch["target_image"].shape == (3, 3, SIZE, SIZE)
    assert batch["reference_masks"].shape == (3, 2, SIZE, SIZE)
    assert batch["class_id"].shape == (3,) and batch["target_size"].shape == (3, 2)
    assert isinstance(batch["target_mask_original"], list)
    assert [tuple(m.shape) for m in batch["target_mask_original"]] == [
        tuple(s.tolist()) for s in batch["target_size"]
    ]
    assert batch["target_id"] == [dataset.episodes[i].target_id for i in range(3)]
    assert len(batch["reference_ids"]) == 3


def test_constructor_needs_exactly_one_mode():
    with pytest.raises(ValueError, match="exactly one"):
        EpisodeDataset(source=make_source(), transform=ResizeNormalize(size=8))
