"""Applies never skip Terraform's state lock: every state-changing command line waits for it
(-lock-timeout) and none can be built with -lock=false."""

from __future__ import annotations

import pytest

from orch.terraform import LOCK_TIMEOUT, command_line


@pytest.mark.parametrize("verb", ["plan", "apply", "destroy", "import", "refresh"])
def test_every_state_verb_waits_for_the_lock(verb: str) -> None:
    argv = command_line("terraform", verb, (), {"auto_approve": True} if verb in ("apply", "destroy") else {},
                        is_tty=False)
    assert f"-lock-timeout={LOCK_TIMEOUT}" in argv and not any(a.startswith("-lock=") for a in argv)


def test_lock_false_cannot_be_asked_for() -> None:
    with pytest.raises(ValueError, match="never changes state without holding its lock"):
        command_line("terraform", "apply", (), {"lock": False}, is_tty=False)
