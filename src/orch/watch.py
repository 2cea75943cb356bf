"""Waiting for saved changes to function sources and stage files (watchfiles, on inotify).

This module owns which file-system events count as a change (a file orch.package would
put in the function's package, or a stage file: caches, VCS and environment folders,
`.orch/`, compiled files and editors' swap and backup files do not) and a debounced,
interruptible wait for them. It must not package, deploy or talk to the gateway:
`orch sync --watch` and the gateway's hot reload (orch.gateway.localcode) act on what it
reports.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from orch.package import EXCLUDED_DIRS, EXCLUDED_FILES, EXCLUDED_SUFFIXES

HEARTBEAT_MS = 250


def _filter():
    from watchfiles import DefaultFilter

    class SourceFilter(DefaultFilter):
        """watchfiles' defaults (VCS folders, caches, editors' temporary files) plus what
        orch.package leaves out of a package."""

        ignore_dirs = tuple(sorted(set(DefaultFilter.ignore_dirs) | EXCLUDED_DIRS))

        def __call__(self, change, path: str) -> bool:
            name = Path(path).name
            if name in EXCLUDED_FILES or name.endswith(EXCLUDED_SUFFIXES):
                return False
            return super().__call__(change, path)

    return SourceFilter()


def changes(
    paths: Iterable[Path],
    stop: threading.Event,
    *,
    step_ms: int = 50,
    debounce_ms: int = 1000,
) -> Iterator[set[Path]]:
    """Yield the set of changed files (absolute paths) each time something under ``paths``
    (folders, watched recursively) is saved, until ``stop`` is set; an empty set about every
    ``HEARTBEAT_MS`` while nothing changes (the first one says the watch is in place).

    Events are grouped: a batch is yielded once ``step_ms`` milliseconds pass without a new
    event (an editor's write, rename and chmod of one save are one batch), or after
    ``debounce_ms`` at most while events keep coming. Setting ``stop`` ends the iteration
    within ``step_ms``; on the main thread Ctrl-C raises KeyboardInterrupt as usual. Paths
    that do not exist are skipped (none left: the iteration ends at once). Linux inotify
    through watchfiles (https://watchfiles.helpmanual.io/api/watch/); no tree is walked
    per check.
    """
    from watchfiles import watch

    existing = [str(p) for p in dict.fromkeys(paths) if Path(p).exists()]
    if not existing:
        return
    for batch in watch(
        *existing,
        watch_filter=_filter(),
        step=step_ms,
        debounce=debounce_ms,
        stop_event=stop,
        rust_timeout=HEARTBEAT_MS,
        yield_on_timeout=True,
        raise_interrupt=True,
        ignore_permission_denied=True,
    ):
        yield {Path(path) for _change, path in batch}
