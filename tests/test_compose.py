"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

The compose file is validated against the official Compose Specification schema (vendored in
tests/contracts/compose/), then against the code it runs: the services the design needs, the
image the worker and the API build, every AFTERACTION_* variable being a real setting that
validates, the search attributes equal to domain/search_attributes.py (the registration
script is run against a stand-in `temporal` CLI), and the commands the image runs existing.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from jsonschema.validators import validator_for  # type: ignore[import-untyped]
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from domain import search_attributes
from settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CONTRACT_DIR = ROOT / "tests" / "contracts" / "compose"
SCHEMA_FILE = CONTRACT_DIR / "compose-spec.json"

NEEDED_SERVICES = {"postgresql", "temporal", "temporal-ui", "worker", "api"}
APP_SERVICES = ("worker", "api")
REGISTRATION_SERVICE = "search-attributes"

# Compose interpolation: `$$` is a literal `$`; ${VAR}, ${VAR:-default}, ${VAR-default},
# ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt}; and bare $VAR.
_TOKEN = re.compile(
    r"\$\$"
    r"|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(text: str) -> str:
    """What Compose makes of `text` when no variable is set: defaults apply, `$$` becomes `$`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        op = match.group("op") or ""
        if op.endswith("-"):
            return match.group("arg")
        if op.endswith("?"):
            raise AssertionError(f"{match.group(0)} has no default; the file must run as is")
        return ""

    return _TOKEN.sub(replace, text)


def interpolated_names(text: str) -> set[str]:
    """The variables Compose would substitute in `text` (not those escaped with `$$`)."""
    return {
        match.group("braced") or match.group("bare")
        for match in _TOKEN.finditer(text)
        if match.group(0) != "$$"
    }


def _load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name} is not a mapping"
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    data = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def schema_errors(document: object, schema: dict[str, Any]) -> list[str]:
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '(top)'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    ]


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's environment as a mapping, whichever of Compose's two forms it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, None) for item in env)
        return {name: value for name, value in pairs}
    return {name: None if value is None else str(value) for name, value in env.items()}


def resolved_environment(service: dict[str, Any]) -> dict[str, str]:
    """The variables the container gets when the shell sets none (pass-throughs drop out)."""
    return {
        name: interpolate(value)
        for name, value in environment(service).items()
        if value is not None
    }


def setting_variables() -> set[str]:
    return {ENV_PREFIX + name.upper() for name in Settings.model_fields}


# --- the file against the Compose Specification ------------------------------------------


def test_vendored_schema_is_the_recorded_upstream_file() -> None:
    readme = (CONTRACT_DIR / "README.md").read_text(encoding="utf-8")
    recorded = re.search(r"sha256 `([0-9a-f]{64})`", readme)
    assert recorded, "README.md must record the schema's sha256"
    assert hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest() == recorded.group(1), (
        "compose-spec.json differs from the upstream file README.md records; "
        "replace it from upstream and update README.md rather than editing it"
    )


def test_compose_file_follows_the_compose_specification(
    compose: dict[str, Any], schema: dict[str, Any]
) -> None:
    assert schema_errors(compose, schema) == []


def _compose_cli() -> list[str] | None:
    """`docker compose` or `docker-compose`, when one is installed (no engine is needed)."""
    candidates = [["docker", "compose"], ["docker-compose"]]
    for command in candidates:
        if shutil.which(command[0]) is None:
            continue
        probe = subprocess.run(
            [*command, "version"], capture_output=True, text=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return command
    return None


def test_compose_cli_accepts_the_file_where_available() -> None:
    command = _compose_cli()
    if command is None:
        pytest.skip("no Compose CLI here; the schema check above stands in for it")
    result = subprocess.run(
        [*command, "--file", str(COMPOSE_FILE), "config", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            lambda doc: doc["services"].update(x={"image": 5, "bogus_key": 1}),
            ["services/x/image: 5 is not of type 'string'", "bogus_key"],
            id="bad-type-and-unknown-key",
        ),
        pytest.param(
            lambda doc: doc.update(servics={}),
            ["servics"],
            id="misspelt-top-level-key",
        ),
        pytest.param(
            lambda doc: doc["services"]["worker"].update(
                depends_on={"temporal": {"condition": "service_ready"}}
            ),
            ["services/worker/depends_on"],
            id="unknown-depends-on-condition",
        ),
    ],
)
def test_schema_check_rejects_an_invalid_file(
    compose: dict[str, Any],
    schema: dict[str, Any],
    mutate: Any,
    expected: list[str],
) -> None:
    broken = copy.deepcopy(compose)
    mutate(broken)
    errors = "\n".join(schema_errors(broken, schema))
    for fragment in expected:
        assert fragment in errors


# --- the file against the code -----------------------------------------------------------


def test_the_services_the_design_needs_exist(compose: dict[str, Any]) -> None:
    assert NEEDED_SERVICES - set(compose["services"]) == set()


def test_worker_and_api_build_the_repository_dockerfile(compose: dict[str, Any]) -> None:
    images = set()
    for name in APP_SERVICES:
        build = compose["services"][name]["build"]
        context, dockerfile = (
            (build, "Dockerfile")
            if isinstance(build, str)
            else (build.get("context", "."), build.get("dockerfile", "Dockerfile"))
        )
        assert (COMPOSE_FILE.parent / context).resolve() == ROOT, name
        assert (ROOT / context / dockerfile).resolve() == DOCKERFILE, name
        images.add(compose["services"][name].get("image"))
    assert len(images) == 1, "worker and api should run one image"


# How the API authenticates callers: only the API needs it (the worker serves no one).
API_ONLY = {
    "AFTERACTION_ADMIN_TOKEN_FILE",
    "AFTERACTION_OIDC_ISSUER",
    "AFTERACTION_OIDC_AUDIENCE",
    "AFTERACTION_OIDC_ROLES_CLAIM",
    "AFTERACTION_OIDC_ROLES_FILE",
}


def test_worker_and_api_share_one_configuration(compose: dict[str, Any]) -> None:
    worker, api = (environment(compose["services"][name]) for name in APP_SERVICES)
    assert {name: value for name, value in api.items() if name not in API_ONLY} == worker
    assert set(api) - set(worker) == API_ONLY


def test_only_the_api_is_published_beyond_this_host(compose: dict[str, Any]) -> None:
    published = {}
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            published[name] = interpolate(str(port))
    assert published.pop("api") == "8000:8000"
    assert published, "Temporal and its UI are published for this host's own tools"
    for name, port in published.items():
        assert port.startswith("127.0.0.1:"), f"{name} is published beyond loopback: {port}"


def test_the_api_takes_its_admin_token_from_a_secret(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert api["secrets"] == ["afteraction_admin_token"]
    assert (
        environment(api)["AFTERACTION_ADMIN_TOKEN_FILE"] == "/run/secrets/afteraction_admin_token"
    )
    assert "afteraction_admin_token" in compose["secrets"]


def test_every_afteraction_variable_is_a_setting(compose: dict[str, Any]) -> None:
    used: set[str] = set()
    for service in compose["services"].values():
        used |= {name for name in environment(service) if name.startswith(ENV_PREFIX)}
    used |= interpolated_names(COMPOSE_FILE.read_text(encoding="utf-8"))
    used |= set(re.findall(r"\b(AFTERACTION_[A-Z0-9_]+)=", DOCKERFILE.read_text("utf-8")))
    used = {name for name in used if name.startswith(ENV_PREFIX)}
    assert used, "the compose file configures the app through AFTERACTION_* variables"
    assert used - setting_variables() == set(), "not fields of settings.Settings"


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_environment_is_valid_settings(
    compose: dict[str, Any], clean_environment: pytest.MonkeyPatch, name: str
) -> None:
    for variable, value in resolved_environment(compose["services"][name]).items():
        clean_environment.setenv(variable, value)
    settings = Settings(_env_file=None)
    services = compose["services"]

    assert not settings.embedded_server
    assert settings.api_host == "0.0.0.0"
    assert settings.log_format == "json"
    # The app talks to the Temporal service of this file, in the namespace auto-setup creates
    # and the search attributes are registered in.
    host, port = settings.effective_temporal_address.rsplit(":", 1)
    assert host == "temporal"
    temporal = resolved_environment(services["temporal"])
    assert temporal["DEFAULT_NAMESPACE"] == settings.namespace
    registration = resolved_environment(services[REGISTRATION_SERVICE])
    assert registration["NAMESPACE"] == settings.namespace
    assert registration["TEMPORAL_ADDRESS"] == settings.effective_temporal_address
    assert resolved_environment(services["temporal-ui"])["TEMPORAL_ADDRESS"] == (
        settings.effective_temporal_address
    )
    assert any(
        interpolate(str(mapping)).rsplit(":", 1)[-1] == port
        for mapping in services["temporal"]["ports"]
    )
    if name == "api":
        published = [interpolate(str(mapping)) for mapping in services["api"]["ports"]]
        assert any(mapping.rsplit(":", 1)[-1] == str(settings.api_port) for mapping in published)
        assert f":{settings.api_port}/healthz" in " ".join(services["api"]["healthcheck"]["test"])


def _code_search_attributes() -> dict[str, str]:
    flags = search_attributes.dev_server_flags()
    assert set(flags[::2]) == {"--search-attribute"}
    return dict(pair.split("=", 1) for pair in flags[1::2])


def _compose_search_attributes(compose: dict[str, Any]) -> dict[str, str]:
    listed = resolved_environment(compose["services"][REGISTRATION_SERVICE])["SEARCH_ATTRIBUTES"]
    pairs = listed.split()
    attributes = dict(pair.split("=", 1) for pair in pairs)
    assert len(attributes) == len(pairs), "an attribute is listed twice"
    return attributes


def test_registered_search_attributes_equal_the_code(compose: dict[str, Any]) -> None:
    assert len(_code_search_attributes()) == len(search_attributes.ALL)
    assert _compose_search_attributes(compose) == _code_search_attributes()


def test_app_waits_for_the_search_attributes(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        depends_on = compose["services"][name]["depends_on"]
        assert depends_on[REGISTRATION_SERVICE]["condition"] == "service_completed_successfully"
    registration = compose["services"][REGISTRATION_SERVICE]
    assert registration["depends_on"]["temporal"]["condition"] == "service_healthy"
    assert "healthcheck" in compose["services"]["temporal"]


# --- the registration script, run against a stand-in `temporal` CLI ------------------------

FAKE_TEMPORAL = """#!/bin/sh
printf '%s\\n' "$*" >> "$FAKE_TEMPORAL_LOG"
case "$*" in
  *"search-attribute create "*"--name $FAKE_EXISTING "*)
    echo "Search attribute $FAKE_EXISTING already exists" >&2; exit 1 ;;
  *"search-attribute create "*"--name $FAKE_BROKEN "*)
    echo "rpc error: code = PermissionDenied" >&2; exit 1 ;;
esac
exit 0
"""


def _registration_script(compose: dict[str, Any]) -> str:
    service = compose["services"][REGISTRATION_SERVICE]
    assert service["entrypoint"] == ["/bin/sh", "-c"]
    (raw,) = service["command"]
    leaks = interpolated_names(raw)
    assert not leaks, f"Compose would substitute {leaks} in the script; escape them as $$"
    return interpolate(raw)


@pytest.fixture
def run_registration(compose: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    if shutil.which("sh") is None:
        pytest.skip("no POSIX shell")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "temporal"
    fake.write_text(FAKE_TEMPORAL, encoding="utf-8")
    fake.chmod(0o755)
    log = tmp_path / "temporal.log"
    script = _registration_script(compose)
    env = resolved_environment(compose["services"][REGISTRATION_SERVICE])

    def run(
        *, existing: str = "", broken: str = ""
    ) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
        log.write_text("", encoding="utf-8")
        result = subprocess.run(
            ["sh", "-c", script],
            env={
                **env,
                "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                "FAKE_TEMPORAL_LOG": str(log),
                "FAKE_EXISTING": existing or "-",
                "FAKE_BROKEN": broken or "-",
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        created: dict[str, str] = {}
        for line in log.read_text(encoding="utf-8").splitlines():
            args = shlex.split(line)
            if args[:3] == ["operator", "search-attribute", "create"]:
                assert args[args.index("--namespace") + 1] == env["NAMESPACE"]
                assert args[args.index("--address") + 1] == env["TEMPORAL_ADDRESS"]
                created[args[args.index("--name") + 1]] = args[args.index("--type") + 1]
        return result, created

    yield run


def test_registration_script_creates_every_attribute_and_tolerates_existing_ones(
    run_registration: Any,
) -> None:
    expected = _code_search_attributes()
    result, created = run_registration(existing="AfteractionState")
    assert result.returncode == 0, result.stderr
    assert created == expected
    assert "already registered: AfteractionState" in result.stdout


def test_registration_script_fails_on_any_other_error(run_registration: Any) -> None:
    result, _ = run_registration(broken="AfteractionTitle")
    assert result.returncode != 0
    assert "PermissionDenied" in result.stderr


# --- the Dockerfile ------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _exec_form(arguments: str) -> list[str]:
    argv = json.loads(arguments)
    assert isinstance(argv, list) and all(isinstance(arg, str) for arg in argv), arguments
    return argv


def _typer_app(module_name: str) -> typer.Typer:
    # The console script's app is the module's `app`; sub-apps (tickets, review) hang off it.
    module = importlib.import_module(module_name)
    app = getattr(module, "app", None)
    assert isinstance(app, typer.Typer), f"{module_name} should define the Typer app `app`"
    return app


def assert_command_exists(argv: list[str], pyproject: dict[str, Any]) -> None:
    project = pyproject["project"]
    setuptools = pyproject["tool"]["setuptools"]
    installed = set(setuptools.get("py-modules", [])) | set(setuptools.get("packages", []))
    match argv:
        case ["python", "-m", module, *_]:
            assert module in installed, f"`pip install .` does not install {module}"
            path = ROOT / f"{module}.py"
            if path.is_file():
                assert '__name__ == "__main__"' in path.read_text(encoding="utf-8"), (
                    f"`python -m {module}` would import {path.name} and do nothing"
                )
            else:
                assert (ROOT / module / "__main__.py").is_file(), f"no module {module}"
        case ["python", script, *_]:
            assert (ROOT / script).is_file(), f"no {script} in the repository"
        case [executable, *args]:
            target = project.get("scripts", {}).get(executable)
            assert target, f"{executable} is not a [project.scripts] entry point"
            module_name, _, _ = target.partition(":")
            if args and not args[0].startswith("-"):
                commands = typer.main.get_command(_typer_app(module_name))
                assert isinstance(commands, typer.core.TyperGroup)
                assert args[0] in commands.commands, f"`{executable} {args[0]}` does not exist"
        case _:
            pytest.fail(f"empty command {argv!r}")


def test_image_and_compose_commands_exist(
    compose: dict[str, Any], pyproject: dict[str, Any]
) -> None:
    commands = [
        _exec_form(arguments)
        for keyword, arguments in dockerfile_instructions()
        if keyword in {"CMD", "ENTRYPOINT"}
    ]
    assert commands, "the Dockerfile names a default command"
    for name in APP_SERVICES:
        command = compose["services"][name]["command"]
        commands.append(command if isinstance(command, list) else shlex.split(command))
    for argv in commands:
        assert_command_exists(argv, pyproject)


def test_dockerfile_builds_a_pinned_non_root_image(pyproject: dict[str, Any]) -> None:
    instructions = dockerfile_instructions()
    (base,) = [arguments for keyword, arguments in instructions if keyword == "FROM"]
    version = re.match(r"python:(\d+\.\d+)-slim", base)
    assert version, base
    assert SpecifierSet(pyproject["project"]["requires-python"]).contains(version.group(1))

    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users and users[-1] not in {"root", "0", "0:0"}, "the image must not run as root"

    runs = " ".join(arguments for keyword, arguments in instructions if keyword == "RUN")
    assert "requirements.lock" in runs
    assert "--no-deps ." in runs
    # The lock is used as constraints on the runtime dependencies: each must be pinned there.
    pinned = {
        re.sub(r"[-_.]+", "-", name).lower()
        for name in re.findall(
            r"^([A-Za-z0-9][A-Za-z0-9._-]*)==",
            (ROOT / "requirements.lock").read_text(encoding="utf-8"),
            re.MULTILINE,
        )
    }
    for dependency in pyproject["project"]["dependencies"]:
        name = re.sub(r"[-_.]+", "-", Requirement(dependency).name).lower()
        assert name in pinned, f"{name} is not pinned in requirements.lock"


def test_dockerignore_excludes_local_state_and_keeps_the_sources(
    pyproject: dict[str, Any],
) -> None:
    patterns = [
        line.strip().removeprefix("/").removeprefix("**/").rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]

    def ignored(path: str) -> bool:
        return any(fnmatch(path, pattern) for pattern in patterns)

    for local in (".venv", ".git", ".afteraction", ".env", "__pycache__"):
        assert ignored(local), f".dockerignore should exclude {local}"
    setuptools = pyproject["tool"]["setuptools"]
    packages = setuptools["packages"]["find"]["include"]
    needed = [
        "pyproject.toml",
        "requirements.lock",
        pyproject["project"]["readme"],
        *(pattern.removesuffix("*") for pattern in packages),
        *(f"{module}.py" for module in setuptools.get("py-modules", [])),
    ]
    for path in needed:
        assert (ROOT / path).exists(), path
        assert not ignored(path), f".dockerignore excludes {path}, which the build needs"
