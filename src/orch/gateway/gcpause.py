"""Short garbage-collector pauses in the long-running gateway processes.

CPython's cyclic collector walks every tracked object of a generation while holding the GIL,
so a full (generation 2) collection stops every request thread of the process for a time
proportional to everything the process holds. In the sandbox daemon that is the emulator's
state and boto3's service models: diagnosing ``bench/gateway.py`` with a ``gc.callbacks``
timer, one full collection of ~200,000 objects took 214 ms, every request in flight in that
process waited for it, and those requests were the gateway's p99.

The remedy is ``gc.freeze()`` (https://docs.python.org/3/library/gc.html#gc.freeze): frozen
objects move to a permanent generation that collections do not walk. What the process holds
when it starts serving is frozen once, and the survivors of each later full collection are
frozen too, so the next one walks only what was allocated since. The price: a reference
cycle whose objects were frozen is not freed until ``collect_when_idle()`` unfreezes them
and collects fully, which it does only while no request is in flight and only once what is
frozen grew by a tenth since the last such collection (a quiet process is not paused every
few seconds to walk what it held at start-up).

Only gateway processes that exist to serve call ``bound_collection_pauses()`` (the sandbox
daemon, the gateway's helper processes, ``orch serve``): they have the watcher's idle tick
that frees what was frozen. A process without that tick (the emulator, a test that merely
builds a gateway) keeps the interpreter's default. This module owns that policy and nothing
else.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable

_installed = False
_lock = threading.Lock()
_frozen_at_last_collection = 0
IDLE_COLLECTION_GROWTH = 0.10  # what frozen must grow by (a fraction) before an idle collection


def _freeze_after_full_collection(phase: str, info: dict) -> None:
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


def bound_collection_pauses() -> None:
    """Freeze what this process holds now, and the survivors of every later full collection.

    Call it once the process is built and about to serve. Idempotent: the ``gc.callbacks``
    hook is added once per process; a second call only freezes again."""
    global _installed, _frozen_at_last_collection
    with _lock:
        gc.freeze()
        _frozen_at_last_collection = gc.get_freeze_count()
        if not _installed:
            gc.callbacks.append(_freeze_after_full_collection)
            _installed = True


def collect_when_idle(busy: Callable[[], bool], min_growth: float = IDLE_COLLECTION_GROWTH) -> bool:
    """Free the frozen garbage: unfreeze, collect fully and freeze again. Does nothing (and
    returns False) when the policy is not installed in this process, when what is frozen
    grew by less than ``min_growth`` (a fraction) since the last collection here, or when
    ``busy()`` says a request is in flight; True when it collected. Meant for a background
    thread at a slow interval (the gateway's generation watcher, every ``SAFETY_INTERVAL``
    seconds without a change); a request that arrives during the collection waits for it,
    as it would have without the policy."""
    global _frozen_at_last_collection
    if not _installed or gc.get_freeze_count() <= _frozen_at_last_collection * (1 + min_growth) or busy():
        return False
    with _lock:
        gc.unfreeze()
        try:
            gc.collect()
        finally:
            gc.freeze()
            _frozen_at_last_collection = gc.get_freeze_count()
    return True
