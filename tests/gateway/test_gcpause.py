"""The gateway processes' collector policy (orch.gateway.gcpause), in a fresh interpreter.

Each check runs in a subprocess: the policy changes the collector of the whole process, and
the test process must keep the interpreter's default.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_a_full_collection_walks_only_what_was_allocated_since_the_process_started_serving():
    _run(
        """
        import gc
        from orch.gateway import gcpause

        held = [[i] for i in range(200_000)]  # what a daemon holds: models, emulator state
        gc.collect()
        assert len(gc.get_objects(generation=2)) > 200_000
        gcpause.bound_collection_pauses()
        assert len(gc.get_objects(generation=2)) < 1_000
        assert gc.get_freeze_count() > 200_000

        later = [[i] for i in range(5_000)]  # allocated while serving
        gc.collect()  # a full collection: its survivors are frozen as it ends
        assert len(gc.get_objects(generation=2)) < 1_000
        assert gc.get_freeze_count() > 205_000
        gcpause.bound_collection_pauses()  # idempotent: one hook
        assert gc.callbacks.count(gcpause._freeze_after_full_collection) == 1
        """
    )


def test_frozen_garbage_is_freed_only_when_no_request_is_in_flight():
    _run(
        """
        import gc, weakref
        from orch.gateway import gcpause

        class Node:
            pass

        assert gcpause.collect_when_idle(lambda: False) is False  # not installed: a no-op
        gcpause.bound_collection_pauses()
        node = Node()
        node.me = node  # a reference cycle alive at a full collection gets frozen
        ref = weakref.ref(node)
        gc.collect()
        del node
        gc.collect()
        assert ref() is not None  # the price: frozen cycles wait
        assert gcpause.collect_when_idle(lambda: False) is False  # frozen hardly grew: no pause
        assert ref() is not None
        assert gcpause.collect_when_idle(lambda: True, min_growth=0) is False  # a request is in flight
        assert ref() is not None
        assert gcpause.collect_when_idle(lambda: False, min_growth=0) is True
        assert ref() is None
        assert gc.get_freeze_count() > 0  # frozen again after the collection
        assert gcpause.collect_when_idle(lambda: False, min_growth=0) is False  # nothing new since

        grown = [[i] for i in range(gc.get_freeze_count())]  # frozen at the next full collection
        gc.collect()
        assert gcpause.collect_when_idle(lambda: False) is True  # grew by more than a tenth
        """
    )
