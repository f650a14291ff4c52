"""single_seed: evaluations that take one eval.seed accept an int or a list of one."""

import pytest
from omegaconf import OmegaConf

from vrpsam.engine.seeds import single_seed


def test_an_int_or_a_list_of_one_is_that_seed_and_a_longer_list_is_refused_with_the_reason():
    assert single_seed(3, "why") == 3
    assert single_seed(OmegaConf.create({"s": [4]}).s, "why") == 4
    with pytest.raises(ValueError, match=r"one seed only, got eval.seed=\[0, 1\]"):
        single_seed([0, 1], "one seed only")
