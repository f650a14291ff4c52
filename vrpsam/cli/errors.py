"""How the console scripts answer a problem the user can fix: the message alone, exit status 1.

vrpsam's own errors already name the problem and the fix (a missing weight file, a fold out of
range, an unreadable image); a traceback in front of them only hides that sentence. Set
``HYDRA_FULL_ERROR=1`` to get the traceback back (Hydra's own switch for the same thing).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from vrpsam.cache.signature import CacheError
from vrpsam.data.reading import DatasetError

# The kinds of error vrpsam raises with a message meant for the user (FrozenWeightsError is a
# FileNotFoundError, WeightFileError and EmptyReferenceError are ValueErrors).
USER_ERRORS = (OSError, ValueError, CacheError, DatasetError)


def reported(main: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a console script's ``main``: user errors print as one message and exit with 1."""

    @functools.wraps(main)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except USER_ERRORS as error:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {error}", file=sys.stderr)
            print("(HYDRA_FULL_ERROR=1 shows the traceback)", file=sys.stderr)
            raise SystemExit(1) from None

    return run
