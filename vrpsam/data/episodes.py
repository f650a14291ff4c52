"""Episode list files (written once, shared by every method and world size) and their sharding.

Which episodes a list holds is decided in :mod:`vrpsam.data.sampling`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vrpsam.artifacts.atomic import atomic_write_text
from vrpsam.data.base import Episode

EPISODE_FILE_FORMAT = "vrpsam-episodes"
EPISODE_FILE_VERSION = 1
REQUIRED_META_KEYS = ("dataset", "fold", "split", "shot", "seed", "n")


def shard_indices(n: int, rank: int, world_size: int) -> range:
    """Indices of the episodes of ``rank``: interleaved, ``rank, rank + world_size, ...``.

    Interleaving keeps each rank's share class-balanced (the lists are class round-robin). The union
    over ranks is exactly ``range(n)`` without duplicates; shard sizes differ by at most one.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"Need 0 <= rank < world_size, got rank={rank}, world_size={world_size}.")
    return range(rank, n, world_size)


def shard_episodes(episodes: Sequence[Episode], rank: int, world_size: int) -> list[Episode]:
    """This rank's part of ``episodes`` (see :func:`shard_indices`), without padding duplicates."""
    return [episodes[i] for i in shard_indices(len(episodes), rank, world_size)]


def _episode_to_json(episode: Episode) -> dict[str, Any]:
    return {
        "class_id": int(episode.class_id),
        "reference_ids": list(episode.reference_ids),
        "target_id": episode.target_id,
    }


def _encode(episodes: Sequence[Episode], meta: Mapping[str, Any]) -> str:
    """Sorted keys, fixed separators, one episode per line (readable diffs), trailing newline."""
    separators = (", ", ": ")
    header = {"format": EPISODE_FILE_FORMAT, "meta": dict(meta), "version": EPISODE_FILE_VERSION}
    lines = [
        json.dumps(_episode_to_json(e), sort_keys=True, separators=separators) for e in episodes
    ]
    body = "[\n" + ",\n".join(lines) + "\n]" if lines else "[]"
    # "episodes" sorts before the header keys, so the document's keys stay in sorted order.
    rest = json.dumps(header, sort_keys=True, separators=separators)[1:]
    return '{"episodes": ' + body + ", " + rest + "\n"


def save_episodes(
    path: str | os.PathLike[str], episodes: Sequence[Episode], meta: Mapping[str, Any]
) -> Path:
    """Write an episode list file: JSON, byte-identical for equal inputs, replaced atomically.

    Args:
        path: destination; parent folders are created.
        episodes: the list to store.
        meta: must hold ``dataset``, ``fold``, ``split``, ``shot``, ``seed``, ``n`` (JSON values);
            ``n`` must equal ``len(episodes)``. More keys are kept.

    Returns:
        The path written.
    """
    missing = [key for key in REQUIRED_META_KEYS if key not in meta]
    if missing:
        raise ValueError(f"Episode list meta lacks {missing}; required: {REQUIRED_META_KEYS}.")
    if meta["n"] != len(episodes):
        raise ValueError(f"meta n={meta['n']} but {len(episodes)} episodes were given.")
    return atomic_write_text(path, _encode(episodes, meta))


def load_episodes(path: str | os.PathLike[str]) -> tuple[list[Episode], dict[str, Any]]:
    """Read an episode list file written by :func:`save_episodes`.

    Returns:
        ``(episodes, meta)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an episode list, an unknown version, or malformed content (the message says
            what).
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error}); expected an episode list."
        ) from error
    if not isinstance(document, dict) or document.get("format") != EPISODE_FILE_FORMAT:
        raise ValueError(
            f"{path} is not a {EPISODE_FILE_FORMAT!r} file (no matching 'format' key)."
        )
    if document.get("version") != EPISODE_FILE_VERSION:
        raise ValueError(
            f"{path} has episode list version {document.get('version')!r}; this vrpsam reads "
            f"version {EPISODE_FILE_VERSION}."
        )
    meta = document.get("meta")
    if not isinstance(meta, dict) or any(key not in meta for key in REQUIRED_META_KEYS):
        raise ValueError(f"{path}: 'meta' must be an object with keys {REQUIRED_META_KEYS}.")
    raw = document.get("episodes")
    if not isinstance(raw, list):
        raise ValueError(f"{path}: 'episodes' must be a list.")
    episodes = []
    for i, item in enumerate(raw):
        try:
            references = tuple(str(r) for r in item["reference_ids"])
            episode = Episode(str(item["target_id"]), int(item["class_id"]), references)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: episode {i} is malformed: {item!r}.") from error
        if len(references) != meta["shot"] or episode.target_id in references:
            raise ValueError(
                f"{path}: episode {i} needs {meta['shot']} references other than its target: "
                f"{item!r}."
            )
        episodes.append(episode)
    if len(episodes) != meta["n"]:
        raise ValueError(f"{path}: meta says n={meta['n']} but the file holds {len(episodes)}.")
    return episodes, meta
