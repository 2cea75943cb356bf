"""Static and plan-time checks of the Terraform modules in modules/.

Runs the real terraform binary offline: `fmt -check`, `init -backend=false` + `validate`
per module, and each module's own `terraform test` (mock provider, no emulator). Needs a
filesystem mirror holding hashicorp/aws: ORCH_PROVIDER_MIRROR, or a well-known folder.
Without terraform or a mirror the tests skip, except under CI=true where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from orch.render import ROOT_OUTPUTS

REPO = Path(__file__).resolve().parents[2]
MODULES_DIR = REPO / "modules"
MODULES = ("lambda", "rest_api", "integration", "stage", "cors", "domain", "stack")
STANDARD_FILES = ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md")
WELL_KNOWN_MIRRORS = (
    "/opt/tf-plugins",
    "~/.terraform.d/plugins",
    "~/.local/share/terraform/plugins",
    "/usr/local/share/terraform/plugins",
    "/usr/share/terraform/plugins",
    "/opt/terraform/plugins",
)
AWS_IN_MIRROR = Path("registry.terraform.io", "hashicorp", "aws")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)")
    pytest.skip(reason)


def _find_mirror() -> Path | None:
    explicit = os.environ.get("ORCH_PROVIDER_MIRROR")
    if explicit:
        root = Path(explicit).expanduser()
        if not (root / AWS_IN_MIRROR).is_dir():
            pytest.fail(
                f"ORCH_PROVIDER_MIRROR={explicit} has no {AWS_IN_MIRROR} folder inside; point "
                "it at the folder that contains registry.terraform.io/."
            )
        return root
    for candidate in WELL_KNOWN_MIRRORS:
        root = Path(candidate).expanduser()
        if (root / AWS_IN_MIRROR).is_dir():
            return root
    return None


class Terraform:
    """The terraform binary with an offline CLI config and per-module data dirs."""

    def __init__(self, binary: str, env: dict[str, str], data_root: Path) -> None:
        self.binary = binary
        self.env = env
        self.data_root = data_root
        self._initialised: set[str] = set()

    def run(
        self, module: str | None, *args: str, timeout: int = 120
    ) -> subprocess.CompletedProcess:
        cwd = MODULES_DIR / module if module else REPO
        env = dict(self.env)
        if module:
            env["TF_DATA_DIR"] = str(self.data_root / module)
        return subprocess.run(
            [self.binary, *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def init(self, module: str) -> None:
        if module in self._initialised:
            return
        result = self.run(module, "init", "-backend=false", "-input=false", "-no-color")
        assert result.returncode == 0, (
            f"terraform init failed in modules/{module}:\n{result.stderr}"
        )
        self._initialised.add(module)


@pytest.fixture(scope="session")
def terraform(tmp_path_factory: pytest.TempPathFactory):
    binary = shutil.which("terraform")
    if binary is None:
        _unavailable("terraform is not on PATH")
    mirror = _find_mirror()
    if mirror is None:
        _unavailable(
            "no provider mirror with registry.terraform.io/hashicorp/aws: set "
            "ORCH_PROVIDER_MIRROR or use one of " + ", ".join(WELL_KNOWN_MIRRORS)
        )
    root = tmp_path_factory.mktemp("terraform")
    config = root / "terraform.rc"
    config.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{mirror.resolve().as_posix()}"\n'
        '    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n'
        '  direct {\n    exclude = ["registry.terraform.io/hashicorp/aws"]\n  }\n'
        "}\n"
    )
    env = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(config),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
    }
    env.pop("TF_DATA_DIR", None)
    env.pop("TF_WORKSPACE", None)
    # init writes .terraform.lock.hcl next to the module; remove the ones this run created.
    preexisting = {m for m in MODULES if (MODULES_DIR / m / ".terraform.lock.hcl").exists()}
    yield Terraform(binary, env, root / "data")
    for module in set(MODULES) - preexisting:
        (MODULES_DIR / module / ".terraform.lock.hcl").unlink(missing_ok=True)


def _blocks(text: str, kind: str) -> dict[str, str]:
    """Top-level `variable`/`output` blocks by name (modules are fmt-clean, so a block ends at
    the first line that is exactly "}")."""
    return dict(re.findall(rf'^{kind} "([^"]+)" {{\n(.*?)^}}', text, flags=re.M | re.S))


@pytest.mark.parametrize("module", MODULES)
def test_module_follows_the_standard_structure(module: str) -> None:
    folder = MODULES_DIR / module
    missing = [name for name in STANDARD_FILES if not (folder / name).is_file()]
    assert not missing, f"modules/{module} lacks {missing}"

    sources = {p.name: p.read_text() for p in folder.glob("*.tf")}
    assert not any(re.search(r'^provider "', t, flags=re.M) for t in sources.values()), (
        f"modules/{module} declares a provider block; only the root may"
    )
    for kind, filename in (("variable", "variables.tf"), ("output", "outputs.tf")):
        blocks = _blocks(sources[filename], kind)
        assert blocks, f"modules/{module}/{filename} declares no {kind}"
        undocumented = [
            n for n, body in blocks.items() if not re.search(r"^  description\s*=", body, re.M)
        ]
        assert not undocumented, f"modules/{module}: {kind}s without description: {undocumented}"
    calls = re.findall(r'^module "', "\n".join(sources.values()), flags=re.M)
    assert module == "stack" or not calls, f"modules/{module} calls other modules; only stack may"


def test_stack_outputs_exactly_the_root_outputs() -> None:
    outputs = set(_blocks((MODULES_DIR / "stack" / "outputs.tf").read_text(), "output"))
    assert outputs == set(ROOT_OUTPUTS)  # the names orch renders into the root and `orch output` shows


def test_stack_variables_are_the_tfvars_contract() -> None:
    variables = set(_blocks((MODULES_DIR / "stack" / "variables.tf").read_text(), "variable"))
    # secret_environment never goes through terraform.tfvars.json: orch.secrets hands it over
    # as TF_VAR_secret_environment
    assert variables == {"region", "stage_name", "tags", "function", "api", "stage", "domain", "secret_environment"}


@pytest.mark.terraform
def test_modules_are_fmt_clean(terraform: Terraform) -> None:
    result = terraform.run(None, "fmt", "-check", "-recursive", "-diff", "-no-color", "modules")
    assert result.returncode == 0, f"terraform fmt -check found unformatted files:\n{result.stdout}"


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.terraform
def test_module_validates(terraform: Terraform, module: str) -> None:
    if "configuration_aliases" in (MODULES_DIR / module / "versions.tf").read_text():
        # `terraform validate` alone reports an aliased provider the caller passes as
        # "not present"; the module's own `terraform test` validates it with the alias given.
        assert any((MODULES_DIR / module / "tests").glob("*.tftest.hcl")), f"modules/{module} needs a terraform test"
        pytest.skip(f"modules/{module} takes aws.us_east_1 from its caller: validated by its terraform test")
    terraform.init(module)
    result = terraform.run(module, "validate", "-no-color")
    assert result.returncode == 0, f"modules/{module} is invalid:\n{result.stderr}{result.stdout}"


@pytest.mark.parametrize(
    "module", [m for m in MODULES if any((MODULES_DIR / m / "tests").glob("*.tftest.hcl"))]
)
@pytest.mark.terraform
def test_module_own_terraform_tests_pass(terraform: Terraform, module: str) -> None:
    terraform.init(module)
    result = terraform.run(module, "test", "-no-color", timeout=180)
    assert result.returncode == 0, (
        f"terraform test failed in modules/{module}:\n{result.stdout}\n{result.stderr}"
    )
    assert re.search(r"Success! [1-9]\d* passed, 0 failed", result.stdout), result.stdout
