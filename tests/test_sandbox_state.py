"""orch.sandbox's files, without starting a daemon: the generation token the gateway watches."""

from __future__ import annotations

from pathlib import Path

from orch import sandbox as sandbox_mod


def test_mark_changed_rewrites_the_generation_atomically(tmp_path: Path) -> None:
    first = sandbox_mod.mark_changed(tmp_path)
    path = tmp_path / ".orch" / "sandbox" / "generation"
    assert path.read_text().strip() == first
    second = sandbox_mod.mark_changed(tmp_path)
    assert second != first and path.read_text().strip() == second
    assert sorted(p.name for p in path.parent.iterdir()) == ["generation"]  # no temp files left
