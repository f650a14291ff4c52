"""The architecture check of saved weights: a checkpoint or export rebuilds only the model it was
trained as."""

from __future__ import annotations


def check_same_architecture(saved: dict, current: dict, what: str) -> None:
    """Refuse weights saved from another architecture, naming the differences."""
    keys = (
        "backbone",
        "sam",
        "num_queries",
        "num_heads",
        "num_layers",
        "backbone_kwargs",
        "sam_kwargs",
    )
    diffs = [
        f"{k}: {saved.get(k)!r} (saved) vs {current.get(k)!r} (config)"
        for k in keys
        if saved.get(k) != current.get(k)
    ]
    if diffs:
        raise ValueError(
            f"the {what} was trained with another model than the config builds: "
            + "; ".join(diffs)
            + f". Select the matching model (e.g. model/backbone={saved.get('backbone')} "
            f"model/sam={saved.get('sam')}, or the experiment it was trained with)."
        )
