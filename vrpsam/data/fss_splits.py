"""FSS-1000's class splits as hsnet has them: 520 training, 240 validation and 240 test classes.

The lists ship with the package (``vrpsam/data/splits/fss1000_hsnet.json``, hsnet's
``data/splits/fss/{trn,val,test}.txt`` in one file). The names are the dataset's folder names,
some with underscores or an apostrophe (``abe's_flyingfish``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

FSS_SPLITS = ("trn", "val", "test")
"""hsnet's split names, in the order the lists are read."""


@lru_cache(maxsize=1)
def _read() -> tuple[tuple[str, tuple[str, ...]], ...]:
    text = (
        resources.files("vrpsam.data").joinpath("splits", "fss1000_hsnet.json").read_text("utf-8")
    )
    data = json.loads(text)
    return tuple((split, tuple(data[split])) for split in FSS_SPLITS)


def fss_class_splits() -> dict[str, tuple[str, ...]]:
    """The FSS-1000 class names of hsnet's splits: ``{"trn": (...), "val": (...), "test": (...)}``.

    Returns:
        A new dict on every call (the lists inside are tuples), in the file's order.
    """
    return dict(_read())
