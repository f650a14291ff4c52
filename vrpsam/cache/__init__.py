"""A disk cache of frozen features (``vrpsam-cache``): built once, read memory-mapped by runs."""

from vrpsam.cache.build import build_cache
from vrpsam.cache.run import build_run_cache, open_caches
from vrpsam.cache.signature import CacheError, CacheMismatchError, cache_signature
from vrpsam.cache.store import FeatureCache

__all__ = [
    "CacheError",
    "CacheMismatchError",
    "FeatureCache",
    "build_cache",
    "build_run_cache",
    "cache_signature",
    "open_caches",
]
