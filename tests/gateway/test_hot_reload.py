"""Hot reload (issue 11): the gateway runs a stage's source folder in place of its deployed
package, a saved edit answers within a second, dependencies vendored into the deployed
package stay importable, and routes and settings stay what was deployed.

Functions are deployed to a real moto server with boto3, named as orch names them
(`<project>-<function>-<stage>`), with packages that carry a vendored dependency the source
folder lacks; requests go through the real gateway and real workers.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tests.gateway.conftest import build_zip, lambda_uri
from tests.gateway.stacks import post

from helpers import wait_for

PY_HANDLER = "import dep\n\n\ndef handler(event, context):\n    return {{'answer': {answer!r}, 'dep': dep.WHO}}\n"
NODE_HANDLER = (
    "import pad from 'leftpad';\n"
    "export const handler = async () => ({{ answer: {answer!r}, dep: pad('x') }});\n"
)
PROJECTS = itertools.count()  # one moto server serves the whole session: names must not repeat
STAGES = {
    "defaults.yaml": "project: {project}\nregion: us-east-1\nfunction: {{name: fn, source: functions/fn}}\n",
    "dev.yaml": "stage: {{variables: {{env: dev}}}}\n",
    "node.yaml": "function: {{name: nd, source: functions/nd, handler: index.handler, runtime: nodejs20.x}}\n",
}


def _deploy(aws: Any, project: Path, name: str, runtime: str, handler: str, files: dict[str, str]) -> str:
    """A function with alias `dev` behind POST / of a new REST API stage `dev` (AWS_PROXY,
    as orch's modules would leave it); its package kept in the project's store. Returns the
    API id."""
    data = build_zip(files)
    (project / ".orch" / "packages" / f"{hashlib.sha256(data).hexdigest()}.zip").write_bytes(data)
    created = aws.lambda_.create_function(
        FunctionName=name, Runtime=runtime, Role=aws.role_arn, Handler=handler, Code={"ZipFile": data},
        Timeout=10, Publish=True,
    )
    alias = aws.lambda_.create_alias(FunctionName=name, Name="dev", FunctionVersion=created["Version"])
    api = aws.apigw.create_rest_api(name=name)["id"]
    root = aws.apigw.get_resources(restApiId=api)["items"][0]["id"]
    aws.apigw.put_method(restApiId=api, resourceId=root, httpMethod="POST", authorizationType="NONE")
    aws.apigw.put_integration(restApiId=api, resourceId=root, httpMethod="POST", type="AWS",
                              integrationHttpMethod="POST", uri=lambda_uri(alias["AliasArn"]))
    aws.apigw.put_method_response(restApiId=api, resourceId=root, httpMethod="POST", statusCode="200")
    aws.apigw.put_integration_response(restApiId=api, resourceId=root, httpMethod="POST", statusCode="200",
                                       selectionPattern="")
    aws.apigw.create_deployment(restApiId=api, stageName="dev")
    return api


@pytest.fixture
def hot(aws, gw_project: Path, serve):
    """A project with stages dev (Python) and node (Node.js ES module), each deployed with an
    old answer and a vendored dependency; the source folders hold the new answers and no
    dependencies. ``hot.start(reload=...)`` serves it."""
    project = f"hot{next(PROJECTS)}"
    (gw_project / "stages").mkdir()
    for name, text in STAGES.items():
        (gw_project / "stages" / name).write_text(text.format(project=project))
    (gw_project / "functions" / "fn").mkdir(parents=True)
    (gw_project / "functions" / "fn" / "handler.py").write_text(PY_HANDLER.format(answer="source"))
    (gw_project / "functions" / "nd").mkdir(parents=True)
    (gw_project / "functions" / "nd" / "index.mjs").write_text(NODE_HANDLER.format(answer="source"))
    apis = {
        "dev": _deploy(aws, gw_project, f"{project}-fn-dev", "python3.12", "handler.handler", {
            "handler.py": PY_HANDLER.format(answer="deployed"), "dep.py": "WHO = 'vendored'\n"}),
    }
    if shutil.which("node"):
        apis["node"] = _deploy(aws, gw_project, f"{project}-nd-node", "nodejs20.x", "index.handler", {
            "index.mjs": NODE_HANDLER.format(answer="deployed"),
            "node_modules/leftpad/package.json": '{"name": "leftpad", "version": "1.0.0", "main": "index.js"}',
            "node_modules/leftpad/index.js": "module.exports = (s) => 'vendored:' + s;\n",
        })

    class Hot:
        root = gw_project
        name = project

        def __init__(self) -> None:
            self.lines: list[str] = []

        def start(self, **options: Any) -> Any:
            self.server = serve(log=self.lines.append, **options)
            if self.server.local is not None:
                assert self.server.local.watching.wait(30), "the hot reload watcher did not start"
            return self.server

        def url(self, stage: str) -> str:
            return f"{self.server.url}/restapis/{apis[stage]}/dev/_user_request_/"

        def answer(self, stage: str) -> dict:
            status, body = post(self.url(stage))
            assert status == 200, body
            return json.loads(body)

        def until(self, stage: str, answer: str, timeout: float) -> float:
            """Seconds until `stage` answers `answer` (fails after `timeout`)."""
            started = time.monotonic()
            pause = threading.Event()
            while self.answer(stage)["answer"] != answer:
                if time.monotonic() - started > timeout:
                    pytest.fail(f"stage {stage} did not answer {answer!r} within {timeout} s")
                pause.wait(0.01)
            return time.monotonic() - started

    return Hot()


def test_a_saved_python_edit_answers_within_a_second_with_vendored_dependencies(hot) -> None:
    server = hot.start(reload=True)
    assert hot.answer("dev") == {"answer": "source", "dep": "vendored"}  # the source folder, deps from the package
    first_workers = server.pool.worker_pids(f"{hot.name}-fn-dev")
    assert any("hot reload:" in line and "runs its source folder functions/fn" in line for line in hot.lines)

    (hot.root / "functions" / "fn" / "handler.py").write_text(PY_HANDLER.format(answer="edited"))
    assert hot.until("dev", "edited", timeout=1.0) < 1.0
    assert hot.answer("dev") == {"answer": "edited", "dep": "vendored"}
    assert any("functions/fn/handler.py saved" in line for line in hot.lines), hot.lines
    # new workers for the new code, the old one retired
    assert first_workers
    now = server.pool.worker_pids(f"{hot.name}-fn-dev")
    assert now and not set(first_workers) & set(now)

    # a broken edit fails as Lambda would, and the next good save recovers
    (hot.root / "functions" / "fn" / "handler.py").write_text("def handler(event, context:\n")
    wait_for(lambda: b"Runtime.UserCodeSyntaxError" in post(hot.url("dev"))[1], "the syntax error served")
    (hot.root / "functions" / "fn" / "handler.py").write_text(PY_HANDLER.format(answer="fixed"))
    assert hot.until("dev", "fixed", timeout=1.0) < 1.0


def test_a_release_answers_until_the_next_save(hot, aws) -> None:
    """A release while the gateway runs (orch apply, orch sync, a rollback: the alias moves
    and the generation changes) is what answers, so smoke checks and rollbacks see it; the
    next save in the source folder brings the source folder back."""
    from orch.sandbox import mark_changed

    hot.start(reload=True)
    assert hot.answer("dev")["answer"] == "source"
    name = f"{hot.name}-fn-dev"
    data = build_zip({"handler.py": PY_HANDLER.format(answer="released"), "dep.py": "WHO = 'vendored'\n"})
    (hot.root / ".orch" / "packages" / f"{hashlib.sha256(data).hexdigest()}.zip").write_bytes(data)  # as orch keeps it
    aws.lambda_.update_function_code(FunctionName=name, ZipFile=data)
    version = aws.lambda_.publish_version(FunctionName=name)["Version"]
    aws.lambda_.update_alias(FunctionName=name, Name="dev", FunctionVersion=version)
    mark_changed(hot.root)
    hot.until("dev", "released", timeout=30)
    assert any(f"{name} was released as version {version}: serving that release until the next save" in line
               for line in hot.lines), hot.lines
    (hot.root / "functions" / "fn" / "handler.py").write_text(PY_HANDLER.format(answer="saved"))
    assert hot.until("dev", "saved", timeout=1.0) < 1.0


def test_a_saved_node_es_module_edit_answers_within_a_second(hot) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    hot.start(reload=True)
    assert hot.answer("node") == {"answer": "source", "dep": "vendored:x"}  # import from the deployed node_modules
    (hot.root / "functions" / "nd" / "index.mjs").write_text(NODE_HANDLER.format(answer="edited"))
    assert hot.until("node", "edited", timeout=1.0) < 1.0


def test_a_stage_file_edit_says_to_apply_and_changes_nothing_served(hot) -> None:
    hot.start(reload=True)
    before = hot.answer("dev")
    text = (hot.root / "stages" / "dev.yaml").read_text()
    (hot.root / "stages" / "dev.yaml").write_text(text.replace("env: dev", "env: changed"))
    wait_for(lambda: any("stages/dev.yaml changed" in line for line in hot.lines), "the stage file change logged")
    line = next(line for line in hot.lines if "stages/dev.yaml changed" in line)
    assert "run `orch apply dev --sandbox`" in line
    assert hot.answer("dev") == before


def test_without_reload_the_deployed_package_answers(hot) -> None:
    server = hot.start(reload=False)
    assert server.local is None
    assert hot.answer("dev") == {"answer": "deployed", "dep": "vendored"}
    (hot.root / "functions" / "fn" / "handler.py").write_text(PY_HANDLER.format(answer="edited"))
    assert hot.answer("dev")["answer"] == "deployed"


def test_a_function_that_is_no_stage_of_the_project_runs_its_package(aws, gw_project: Path, serve) -> None:
    (gw_project / "stages").mkdir()
    (gw_project / "stages" / "dev.yaml").write_text("project: other\n")
    api = _deploy(aws, gw_project, f"unrelated-{time.monotonic_ns()}", "python3.12", "handler.handler",
                  {"handler.py": "def handler(event, context):\n    return {'answer': 'package'}\n"})
    server = serve(reload=True, log=lambda _line: None)
    status, body = post(f"{server.url}/restapis/{api}/dev/_user_request_/")
    assert (status, json.loads(body)) == (200, {"answer": "package"})
