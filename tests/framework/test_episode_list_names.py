"""The fixed test episode list is named by everything that decides its episodes: a list drawn under
another size threshold or other lists is another file, never reused silently."""

from omegaconf import OmegaConf

from vrpsam.engine.runtime import episode_list_path

TREE = {"dataset": "pascal", "fold": 0, "root": "trees/voc"}


def path(data):
    return episode_list_path(data, "out", seed=0, n=1000, shot=1, sampling="uniform")


def with_options(**options):
    return OmegaConf.create({**TREE, "source_options": options})


def test_another_size_threshold_or_lists_name_another_list():
    base = path(with_options(min_pixels=2048, lists="auto"))
    assert path(with_options(min_pixels=400, lists="auto")) != base
    assert path(with_options(min_pixels=2048, lists="generate")) != base
    assert path(with_options(lists="auto", min_pixels=2048)) == base  # same setting, same file


def test_no_options_and_empty_options_name_the_same_list():
    assert path(OmegaConf.create(TREE)) == path(with_options())
    assert path(OmegaConf.create({**TREE, "source_options": None})) == path(with_options())
