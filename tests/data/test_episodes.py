"""Episode sampling, fixed lists, list files and sharding."""

import json
from collections import Counter

import pytest
from fakes import make_source

from vrpsam.data.base import Episode
from vrpsam.data.episodes import load_episodes, save_episodes, shard_episodes, shard_indices
from vrpsam.data.sampling import (
    TrainingEpisodeSampler,
    make_test_episodes,
    make_validation_episodes,
)


def _meta(episodes, seed=0, shot=1):
    return {"dataset": "fake", "fold": 0, "split": "test", "shot": shot, "seed": seed,
            "n": len(episodes)}  # fmt: skip


def _assert_valid(episodes, source, shot):
    by_class = source.image_ids_by_class()
    for episode in episodes:
        assert episode.class_id in source.classes
        assert episode.target_id in by_class[episode.class_id]
        assert len(episode.reference_ids) == shot
        assert len(set(episode.reference_ids)) == shot, "references must be distinct"
        assert episode.target_id not in episode.reference_ids
        assert all(r in by_class[episode.class_id] for r in episode.reference_ids)


@pytest.mark.parametrize("shot", [1, 5])
def test_test_episodes_are_valid_and_class_balanced(shot):
    source = make_source(classes=(1, 2, 3, 4, 5), images_per_class=6)
    episodes = make_test_episodes(source, shot=shot, seed=0, n=103)
    assert len(episodes) == 103
    _assert_valid(episodes, source, shot)
    counts = Counter(e.class_id for e in episodes)
    assert set(counts) == set(source.classes)
    assert max(counts.values()) - min(counts.values()) <= 1


def test_targets_cycle_through_every_image_of_a_class_before_repeating():
    source = make_source(classes=(1, 2), images_per_class=6)
    episodes = make_test_episodes(source, shot=1, seed=3, n=2 * 7)
    for class_id, pool in source.image_ids_by_class().items():
        targets = [e.target_id for e in episodes if e.class_id == class_id]
        assert sorted(targets) == sorted(pool)


def test_same_seed_gives_byte_identical_list_files(tmp_path):
    source = make_source()
    first = make_test_episodes(source, shot=1, seed=11, n=50)
    again = make_test_episodes(make_source(), shot=1, seed=11, n=50)
    a = save_episodes(tmp_path / "a.json", first, _meta(first, seed=11))
    b = save_episodes(tmp_path / "sub" / "b.json", again, _meta(again, seed=11))
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes().endswith(b"}\n")
    assert make_test_episodes(source, shot=1, seed=12, n=50) != first


def test_shorter_list_is_a_prefix_of_a_longer_one():
    source = make_source()
    assert make_test_episodes(source, shot=1, seed=2, n=40)[:25] == make_test_episodes(
        source, shot=1, seed=2, n=25
    )


def test_list_file_round_trip(tmp_path):
    episodes = make_test_episodes(make_source(), shot=5, seed=1, n=30)
    path = save_episodes(tmp_path / "list.json", episodes, _meta(episodes, seed=1, shot=5))
    loaded, meta = load_episodes(path)
    assert loaded == episodes
    assert meta == _meta(episodes, seed=1, shot=5)
    assert list(tmp_path.iterdir()) == [path], "no temporary file may remain"


def test_load_rejects_foreign_and_malformed_files(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_episodes(path)
    path.write_text(json.dumps({"episodes": []}))
    with pytest.raises(ValueError, match="vrpsam-episodes"):
        load_episodes(path)
    episodes = [Episode("a", 1, ("b",))]
    save_episodes(path, episodes, _meta(episodes))
    document = json.loads(path.read_text())
    document["version"] = 99
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="version 99"):
        load_episodes(path)
    document["version"] = 1
    document["episodes"][0]["reference_ids"] = ["a"]
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="episode 0"):
        load_episodes(path)
    with pytest.raises(FileNotFoundError):
        load_episodes(tmp_path / "missing.json")


def test_save_requires_meta_keys(tmp_path):
    with pytest.raises(ValueError, match="seed"):
        save_episodes(tmp_path / "x.json", [], {"dataset": "fake", "fold": 0, "split": "test",
                                                "shot": 1, "n": 0})  # fmt: skip


@pytest.mark.parametrize(("n", "world_size"), [(1000, 2), (1000, 3), (7, 3), (2, 4)])
def test_shards_cover_the_list_exactly_once(n, world_size):
    episodes = [Episode(f"t{i}", 1, (f"r{i}",)) for i in range(n)]
    shards = [shard_episodes(episodes, rank, world_size) for rank in range(world_size)]
    merged = [e for shard in shards for e in shard]
    assert sorted(merged, key=lambda e: int(e.target_id[1:])) == episodes
    assert len(merged) == len(set(merged)) == n
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    for rank in range(world_size):
        assert [episodes[i] for i in shard_indices(n, rank, world_size)] == shards[rank]


def test_shard_rejects_bad_rank():
    with pytest.raises(ValueError, match="rank"):
        shard_indices(10, 2, 2)


def test_test_list_skips_a_class_that_cannot_form_an_episode_with_one_warning_naming_it():
    source = make_source(classes=(1, 2, 3), images_per_class=6, extra={3: 1})
    with pytest.warns(UserWarning, match=r"classes 3 \(class3\).*\{3: 1\}") as caught:
        episodes = make_test_episodes(source, shot=1, seed=0, n=10)
    assert len([w for w in caught if "left out" in str(w.message)]) == 1
    assert {e.class_id for e in episodes} == {1, 2}
    with pytest.raises(ValueError, match="no class with shot"), pytest.warns(UserWarning):
        make_test_episodes(make_source(images_per_class=3), shot=5, seed=0, n=10)


def test_validation_skips_small_classes_with_a_warning():
    source = make_source(classes=(1, 2, 3), images_per_class=6, extra={3: 1}, split="val")
    with pytest.warns(UserWarning, match="left out"):
        episodes = make_validation_episodes(source, shot=1, seed=0, n=20)
    assert {e.class_id for e in episodes} == {1, 2}
    with pytest.raises(ValueError, match="'val'"):
        make_validation_episodes(make_source(split="test"), shot=1, seed=0, n=5)


def test_training_episodes_depend_only_on_seed_epoch_and_index():
    source = make_source(classes=(1, 2, 3), images_per_class=6, split="train")
    sampler = TrainingEpisodeSampler(source=source, shot=2, seed=5)
    other = TrainingEpisodeSampler(source=source, shot=2, seed=5)
    forward = [sampler.episode(0, i) for i in range(40)]
    backward = [other.episode(0, i) for i in reversed(range(40))][::-1]
    assert forward == backward
    _assert_valid(forward, source, 2)
    assert [sampler.episode(1, i) for i in range(40)] != forward, "epochs must differ"


def test_training_epoch_visits_every_target_image_once():
    source = make_source(classes=(1, 2, 3), images_per_class=4, split="train")
    sampler = TrainingEpisodeSampler(source=source, shot=1, seed=0)
    targets = [sampler.episode(3, i).target_id for i in range(len(sampler))]
    assert sorted(targets) == sampler.target_ids


def test_training_leaves_out_classes_too_small_for_the_shot():
    source = make_source(classes=(1, 2), images_per_class=6, extra={2: 1}, split="train")
    with pytest.warns(UserWarning, match="left out"):
        sampler = TrainingEpisodeSampler(source=source, shot=1, seed=0)
    assert {sampler.episode(0, i).class_id for i in range(30)} == {1}
    with pytest.raises(ValueError, match="no class"):
        TrainingEpisodeSampler(source=make_source(images_per_class=2), shot=5, seed=0)
