"""``vrpsam-cache``: compute a fold's frozen features once, for training and evaluation to read.

    vrpsam-cache experiment=pascal5i_resnet50 data.root=DATA data.fold=0 cache.dir=CACHE
    vrpsam-train experiment=pascal5i_resnet50 data.root=DATA data.fold=0 cache.dir=CACHE

Under torchrun, ranks build disjoint shards (``torchrun --nproc_per_node=4 -m vrpsam.cli.cache``).
A problem the user can fix (random frozen weights, a fold out of range, a cache built for other
settings) prints as its message alone, exit status 1 (:mod:`vrpsam.cli.errors`).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from vrpsam.cache.run import build_run_cache
from vrpsam.cli.errors import reported
from vrpsam.conf import CONFIG_DIR
from vrpsam.data.folds import check_fold
from vrpsam.engine.protocol import configured_protocol


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="build_cache")
@reported
def main(cfg: DictConfig) -> None:
    check_fold(cfg.data.fold, cfg.data.dataset)
    protocol = configured_protocol(cfg, CONFIG_DIR)
    build_run_cache(cfg, data_options=protocol.data_options())


if __name__ == "__main__":
    main()
