"""Hot reload: the local gateway runs a stage's source folder in place of its deployed package.

This module owns mapping a deployed function to a stage of this project (by its name,
`<project>-<function.name>-<stage>`, read from the stage files with orch.config), watching
those stages' source folders and the stage files (orch.watch, on a thread of its own), and
turning the deployed FunctionSpec into one that runs the source folder, with the deployed
package's folder behind it for the dependencies orch vendored there, under a revision that
changes with every save (so edited code gets new workers). The stage's routes, templates
and every function setting stay what was deployed. It must not read the emulator, start
workers or serve requests: orch.gateway.app re-warms workers when it reports a change.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orch.gateway.workers import FunctionSpec

RELOAD_VARIABLE = "ORCH_RELOAD"
"""`ORCH_RELOAD=0` starts the sandbox's background gateway without hot reload."""
DEPENDENCY_FILES = {"python": "requirements.txt", "nodejs": "package.json"}
STEP_MS = 30  # a save is reported this long after its last event ...
DEBOUNCE_MS = 300  # ... or this long after its first, while events keep coming
RETRY_SECONDS = 1.0  # nothing to watch (no stages/ folder yet): look again this often


def reload_from_environment(environ: dict[str, str]) -> bool:
    """Hot reload is on unless ``ORCH_RELOAD`` is ``0``, ``false``, ``no`` or ``off``."""
    return environ.get(RELOAD_VARIABLE, "1").strip().lower() not in {"0", "false", "no", "off"}


def _family(runtime: str) -> str:
    return "nodejs" if runtime.startswith("nodejs") else "python" if runtime.startswith("python") else runtime


@dataclass(frozen=True)
class Source:
    """Where a stage's function code lives, as the stage files say now."""

    stage: str
    function_name: str
    folder: Path  # resolved
    runtime: str


class LocalCode:
    """Serves the source folders of this project's stages in place of their deployed packages.

    ``local_spec(spec)`` is called for every function the gateway is about to run; it
    returns ``spec`` unchanged for a function that is not a stage of this project (or whose
    stage file now names another runtime family), else a copy whose ``code_dir`` is the
    stage's source folder, ``dependency_dirs`` the deployed package's folder and
    ``revision`` the folder's save count. ``start()`` watches the folders and ``stages/``;
    after each save it calls ``on_change()`` (from its thread) so the caller can start
    workers for the new revision. ``watching`` is set once the watch is in place.
    ``announce``: log what is served and what changed (one gateway process does).
    """

    def __init__(
        self,
        project_dir: Path,
        *,
        log: Callable[[str], None],
        announce: bool = True,
        on_change: Callable[[], None] | None = None,
        step_ms: int = STEP_MS,
        debounce_ms: int = DEBOUNCE_MS,
    ) -> None:
        self.project_dir = Path(project_dir).resolve()
        self.log = log
        self.announce = announce
        self.on_change = on_change
        self.step_ms = step_ms
        self.debounce_ms = debounce_ms
        self.watching = threading.Event()
        # replaced whole (never mutated), so request threads read them without a lock
        self._sources: dict[str, Source] = {}
        self._revisions: dict[Path, int] = {}
        # function name -> (the deployed spec, (folder, revision), the spec served for them)
        self._served: dict[str, tuple[FunctionSpec, tuple[Path, str], FunctionSpec]] = {}
        self._announced: set[tuple[str, str]] = set()
        # function name -> the deployed version last seen; another one is a release (orch
        # apply, sync, rollback), and the release is served until the folder's next save
        self._versions: dict[str, str] = {}
        self._released: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._restart = threading.Event()
        self._thread: threading.Thread | None = None
        self._sources = self._read_stages({})

    # -- what runs --

    def local_spec(self, spec: FunctionSpec) -> FunctionSpec:
        """``spec`` with the stage's source folder as its code, when it maps to one."""
        source = self._sources.get(spec.name)
        if source is None or spec.dependency_dirs:
            return spec
        if _family(source.runtime) != _family(spec.runtime):
            self._say_once(("runtime", spec.name, source.runtime),
                           f"gateway: stage {source.stage!r} now names runtime {source.runtime}, {spec.name} runs "
                           f"{spec.runtime}: serving its deployed package; run `orch apply {source.stage} --sandbox`")
            return spec
        if self._is_released(spec, source):
            return spec
        revision = str(self._revisions.get(source.folder, 0))
        cached = self._served.get(spec.name)
        if cached is not None and cached[0] is spec and cached[1] == (source.folder, revision):
            return cached[2]
        served = dataclasses.replace(
            spec, code_dir=source.folder, dependency_dirs=(Path(spec.code_dir),), revision=revision
        )
        with self._lock:
            self._served = {**self._served, spec.name: (spec, (source.folder, revision), served)}
        self._say_once(("serving", spec.name), self._serving_line(source, spec))
        return served

    def _is_released(self, spec: FunctionSpec, source: Source) -> bool:
        """Whether ``spec`` is a release made while this gateway ran (its version changed), not
        yet followed by a save in its source folder: then the released code answers, so that
        what `orch apply`'s and `orch sync`'s smoke checks and a rollback see is the release."""
        seen = self._versions.get(spec.name)
        if seen != spec.version:
            with self._lock:
                self._versions = {**self._versions, spec.name: spec.version}
                if seen is not None:
                    self._released = self._released | {spec.name}
            if seen is not None:
                self._say_once(("released", spec.name, spec.version), (
                    f"gateway: hot reload: {spec.name} was released as version {spec.version}: serving that "
                    f"release until the next save in {_shown(source.folder, self.project_dir)}"))
        return spec.name in self._released

    def _serving_line(self, source: Source, spec: FunctionSpec) -> str:
        folder = _shown(source.folder, self.project_dir)
        return (
            f"gateway: hot reload: {spec.name} (stage {source.stage!r}) runs its source folder {folder} "
            f"in place of the deployed package (version {spec.version}, {Path(spec.code_dir).name[:12]}...), "
            "which still supplies the vendored dependencies; a saved edit answers from the next request, "
            "without Terraform. Routes, templates and settings are what was deployed. Until "
            f"`orch sync {source.stage} --sandbox` or `orch apply {source.stage} --sandbox` releases the edits, "
            f"`orch plan {source.stage} --sandbox` shows them as pending (ORCH_RELOAD=0 or --no-reload: "
            "serve the deployed package)"
        )

    def _say_once(self, key: tuple, line: str) -> None:
        if not self.announce:
            return
        with self._lock:  # request threads and the warming thread get here at once
            if key in self._announced:
                return
            self._announced.add(key)
        self.log(line)

    # -- the stage files --

    def _read_stages(self, previous: dict[str, Source]) -> dict[str, Source]:
        """Function name -> Source for every stage file that loads; a stage file that does
        not (half-way through an edit) keeps what it said before."""
        from orch.config import load_stage, stage_names
        from orch.errors import ConfigError

        sources: dict[str, Source] = {}
        try:
            names = stage_names(self.project_dir)
        except OSError:
            return dict(previous)
        for name in names:
            try:
                stage = load_stage(self.project_dir, name)
            except ConfigError as exc:
                kept = [s for s in previous.values() if s.stage == name]
                sources.update({s.function_name: s for s in kept})
                if self.announce:
                    then = "keeping its previous source folder" if kept else "its function runs the deployed package"
                    self.log(f"gateway: hot reload: stage {name!r} does not load ({exc.message}); {then}")
                continue
            source = Source(name, stage.function_name, stage.source_dir, stage.config.function.runtime)
            sources[source.function_name] = source
        return sources

    # -- watching --

    def start(self) -> LocalCode:
        self._thread = threading.Thread(target=self._run, name="gateway-hot-reload", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _paths(self) -> list[Path]:
        return [self.project_dir / "stages", *sorted({s.folder for s in self._sources.values()})]

    def _run(self) -> None:
        from orch.watch import changes

        while not self._stop.is_set():
            self._restart.clear()
            paths = self._paths()
            try:
                for batch in changes(paths, self._stop, step_ms=self.step_ms, debounce_ms=self.debounce_ms):
                    self.watching.set()
                    if batch:
                        self._changed(batch)
                    if self._restart.is_set():
                        break
                else:
                    if not self._stop.is_set():
                        self._stop.wait(RETRY_SECONDS)  # nothing to watch yet
            except Exception as exc:  # noqa: BLE001 - hot reload must never take the gateway down
                self.log(f"gateway: hot reload stopped watching {', '.join(map(str, paths))}: {exc!r}")
                self._stop.wait(RETRY_SECONDS)

    def _changed(self, batch: set[Path]) -> None:
        stages_dir = self.project_dir / "stages"
        stage_files = sorted(p for p in batch if p.parent == stages_dir and p.suffix == ".yaml")
        if stage_files:
            self._stage_files_changed(stage_files)
        bumped: dict[Path, list[Path]] = {}
        for folder in {s.folder for s in self._sources.values()}:
            inside = [p for p in batch if p.is_relative_to(folder)]
            if inside:
                bumped[folder] = inside
        if not bumped:
            return
        with self._lock:
            self._revisions = {**self._revisions, **{f: self._revisions.get(f, 0) + 1 for f in bumped}}
            saved = {name for name, source in self._sources.items() if source.folder in bumped}
            self._released = self._released - saved  # a save: the source folder answers again
        for folder, files in bumped.items():
            self._report_edit(folder, files)
        if self.on_change is not None:
            self.on_change()

    def _stage_files_changed(self, files: list[Path]) -> None:
        before = self._sources
        self._sources = self._read_stages(before)
        if {s.folder for s in self._sources.values()} != {s.folder for s in before.values()}:
            self._restart.set()  # watch the folders the stage files name now
        if not self.announce:
            return
        for file in files:
            stage = file.stem if file.name != "defaults.yaml" else None
            command = f"orch apply {stage} --sandbox" if stage else "orch apply STAGE --sandbox for each stage"
            self.log(
                f"gateway: {_shown(file, self.project_dir)} changed: the gateway still serves the routes, templates "
                f"and settings deployed by the last `orch apply` (code edits are served at once); run `{command}` "
                "to deploy the change"
            )

    def _report_edit(self, folder: Path, files: list[Path]) -> None:
        if not self.announce:
            return
        # only functions this gateway runs from the folder (stages deployed here), and only
        # files still there (an editor's or sed's temporary file is gone by now)
        names = sorted(name for name, (_spec, (where, _rev), _served) in self._served.items() if where == folder)
        kept = [f for f in sorted(files) if f.exists()]
        shown = ", ".join(_shown(f, self.project_dir) for f in kept[:3]) + (" ..." if len(kept) > 3 else "")
        what = f"{shown} saved" if kept else f"a file in {_shown(folder, self.project_dir)} removed"
        if names:
            who = f"{', '.join(names)} run{'s' if len(names) == 1 else ''} the new code from the next request"
        else:
            who = "no deployed function runs this folder here yet"
        self.log(f"gateway: hot reload: {what}: {who}")
        runtimes = {_family(s.runtime) for s in self._sources.values() if s.folder == folder}
        for family in sorted(runtimes):
            manifest = DEPENDENCY_FILES.get(family)
            if manifest and any(f.name == manifest for f in files):
                stages = sorted(s.stage for s in self._sources.values() if s.folder == folder)
                self.log(
                    f"gateway: {manifest} changed: dependencies still come from the deployed package; "
                    f"run `orch sync {stages[0]} --sandbox` (or `orch apply`) to vendor the new ones"
                )


def _shown(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


__all__ = ["LocalCode", "RELOAD_VARIABLE", "Source", "reload_from_environment"]
