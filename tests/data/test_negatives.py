"""Negative episodes: training targets without the reference's class (an empty ground truth) and
the false-positive test list."""

from __future__ import annotations

from fakes import make_source

from vrpsam.data.dataset import EpisodeDataset
from vrpsam.data.sampling import (
    TrainingEpisodeSampler,
    make_negative_episodes,
    make_test_episodes,
)
from vrpsam.data.transforms import ResizeNormalize


def test_no_negative_share_leaves_the_training_episodes_as_they_were():
    source = make_source(split="train")
    plain = TrainingEpisodeSampler(source=source, shot=1, seed=3)
    zero = TrainingEpisodeSampler(source=source, shot=1, seed=3, negative_share=0.0)
    keys = [(e, i) for e in range(2) for i in range(len(plain))]
    assert [plain.episode(*k) for k in keys] == [zero.episode(*k) for k in keys]


def test_a_negative_share_gives_that_share_of_targets_without_the_class():
    source = make_source(split="train", images_per_class=10)
    sampler = TrainingEpisodeSampler(source=source, shot=1, seed=0, negative_share=0.3)
    episodes = [sampler.episode(e, i) for e in range(8) for i in range(len(sampler))]
    negative = [e for e in episodes if e.class_id not in source.classes_present(e.target_id)]
    assert 0.22 < len(negative) / len(episodes) < 0.38
    for episode in negative:  # the references still show the class
        assert all(episode.class_id in source.classes_present(r) for r in episode.reference_ids)
    again = TrainingEpisodeSampler(source=source, shot=1, seed=0, negative_share=0.3)
    assert episodes[: len(sampler)] == [again.episode(0, i) for i in range(len(sampler))]


def test_a_negative_episode_has_an_empty_ground_truth():
    source = make_source(split="train")
    sampler = TrainingEpisodeSampler(source=source, shot=1, seed=0, negative_share=0.9)
    dataset = EpisodeDataset(source=source, transform=ResizeNormalize(size=32), sampler=sampler)
    for index in range(len(dataset)):
        item = dataset[index]
        episode = sampler.episode(0, index)
        empty = episode.class_id not in source.classes_present(episode.target_id)
        assert empty == (not (item["target_mask"] == 1).any())


def test_negative_test_episodes_swap_targets_for_images_without_the_class():
    source = make_source(images_per_class=6)
    episodes = make_test_episodes(source, shot=1, seed=0, n=40)
    negatives = make_negative_episodes(source, episodes, seed=0)
    assert len(negatives) == 40
    for positive, negative in zip(episodes, negatives, strict=True):
        assert negative.class_id == positive.class_id
        assert negative.reference_ids == positive.reference_ids
        assert negative.class_id not in source.classes_present(negative.target_id)
    assert negatives == make_negative_episodes(source, episodes, seed=0)
    assert negatives != make_negative_episodes(source, episodes, seed=1)
