"""vvkit init, new, list and update against real files, git and Copier."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.cli.conftest import snapshot

REJECTED_PATHS = [
    "Coffee-Machine/x",
    "shop/Coffee-Machine",
    "shop/coffee_machine",
    "shop/2fast",
    "shop/machine.v2",
    "shop/ma chine",
    "shop/кофе",
    "a/b/c",
    "../x",
    "shop/../x",
    "shop/",
    "/machine",
    "shop",
    "shop/" + "a" * 64,
    "shop/class",
    "shop/import",
    "shop/none",
    "shop/redis-node-0",
    "shop/registry",
    "shop/machine-",
]


def test_init_creates_workspace(workspace):
    assert (workspace / "vvkit.toml").is_file()
    assert (workspace / "services").is_dir()
    assert ".vvkit/" in (workspace / ".gitignore").read_text()
    assert (workspace / ".git").is_dir()


def test_init_twice_changes_nothing(workspace, run_vvkit):
    before = snapshot(workspace)
    result = run_vvkit("init", "ws")
    assert result.returncode == 1
    assert "already exists" in result.stderr
    assert snapshot(workspace) == before


def test_new_renders_service_blueprint(workspace, run_vvkit):
    result = run_vvkit("new", "shop/coffee-machine", cwd=workspace, check=True)
    folder = workspace / "services" / "shop" / "coffee-machine"

    assert "class CoffeeMachine(Service)" in (folder / "service.py").read_text()
    for name in ("Dockerfile", "requirements.txt", "aptfile", "config.yml", "tests/test_coffee_machine.py"):
        assert (folder / name).is_file(), name
    assert "FROM ${BASE_IMAGE}" in (folder / "Dockerfile").read_text()
    assert "vvkit sync" in result.stderr


def test_new_finds_workspace_from_subfolder(workspace, run_vvkit):
    run_vvkit("new", "shop/machine", cwd=workspace / "services", check=True)
    assert (workspace / "services" / "shop" / "machine" / "service.py").is_file()


def test_new_outside_workspace_fails(tmp_path, run_vvkit):
    result = run_vvkit("new", "shop/machine", cwd=tmp_path)
    assert result.returncode == 1
    assert "vvkit init" in result.stderr
    assert not (tmp_path / "services").exists()


def test_new_with_workspace_option(workspace, tmp_path, run_vvkit):
    run_vvkit("new", "shop/machine", "--workspace", str(workspace), cwd=tmp_path, check=True)
    assert (workspace / "services" / "shop" / "machine" / "service.py").is_file()


@pytest.mark.parametrize("path", REJECTED_PATHS)
def test_new_rejects_invalid_name(workspace, run_vvkit, path):
    before = snapshot(workspace)
    result = run_vvkit("new", path, cwd=workspace)

    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(workspace) == before
    assert not (workspace.parent / "x").exists()


def test_new_rejects_compose_name_collision(workspace, run_vvkit):
    run_vvkit("new", "shop/coffee-machine", cwd=workspace, check=True)
    before = snapshot(workspace)
    result = run_vvkit("new", "shop-coffee/machine", cwd=workspace)

    assert result.returncode == 1
    assert "shop-coffee-machine" in result.stderr
    assert snapshot(workspace) == before


def test_new_twice_changes_no_byte(workspace, run_vvkit):
    run_vvkit("new", "shop/machine", cwd=workspace, check=True)
    folder = workspace / "services" / "shop" / "machine"
    (folder / ".env").write_text("SECRET=keep-me\n")
    (folder / "service.py").write_text((folder / "service.py").read_text() + "\n# edited\n")
    before = snapshot(workspace)

    result = run_vvkit("new", "shop/machine", cwd=workspace)

    assert result.returncode == 1
    assert "already exists" in result.stderr
    assert snapshot(workspace) == before


def test_new_api_blueprint(workspace, run_vvkit):
    run_vvkit("new", "shop/api", "--blueprint", "api", cwd=workspace, check=True)
    service = (workspace / "services" / "shop" / "api" / "service.py").read_text()
    assert "class Api(Gateway)" in service


def test_new_data_sets_answer(workspace, run_vvkit):
    run_vvkit("new", "shop/machine", "--data", "description=Brews coffee.", cwd=workspace, check=True)
    assert '"""Brews coffee."""' in (workspace / "services" / "shop" / "machine" / "service.py").read_text()


def test_new_rejects_data_without_equals(workspace, run_vvkit):
    result = run_vvkit("new", "shop/machine", "--data", "description", cwd=workspace)
    assert result.returncode == 1
    assert "KEY=VALUE" in result.stderr
    assert not (workspace / "services" / "shop").exists()


def test_list_json_shows_components(workspace, run_vvkit):
    run_vvkit("new", "shop/coffee-machine", cwd=workspace, check=True)
    run_vvkit("new", "shop/api", "-b", "api", cwd=workspace, check=True)
    rows = json.loads(run_vvkit("list", "--json", cwd=workspace, check=True).stdout)

    assert [(r["app"], r["component"], r["blueprint"], r["class"]) for r in rows] == [
        ("shop", "api", "api", "Api"),
        ("shop", "coffee-machine", "service", "CoffeeMachine"),
    ]


def _git(folder, *args):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}
    subprocess.run(["git", *args], cwd=folder, env=env, check=True, capture_output=True)


def test_update_keeps_developer_method(workspace, tmp_path, run_vvkit):
    blueprint = tmp_path / "my-blueprint"
    shutil.copytree(os.path.join(os.path.dirname(__file__), "..", "..", "blueprints", "service"), blueprint)
    _git(blueprint, "init", "--quiet")
    _git(blueprint, "add", "--all")
    _git(blueprint, "commit", "--quiet", "-m", "v1")
    _git(blueprint, "tag", "1.0.0")
    run_vvkit("new", "shop/machine", "--blueprint", str(blueprint), cwd=workspace, check=True)
    service = workspace / "services" / "shop" / "machine" / "service.py"
    service.write_text(service.read_text() + "\n    @rpc()\n    async def brew(self) -> str:\n        return 'espresso'\n")
    _git(workspace, "add", "--all")
    _git(workspace, "commit", "--quiet", "-m", "add brew")

    requirements = blueprint / "template" / "requirements.txt.jinja"
    requirements.write_text(requirements.read_text() + "humanize\n")
    _git(blueprint, "commit", "--quiet", "-am", "v2")
    _git(blueprint, "tag", "1.1.0")
    run_vvkit("update", "shop/machine", cwd=workspace, check=True)

    assert "async def brew(self)" in service.read_text()
    assert "humanize" in (service.parent / "requirements.txt").read_text()


def test_update_unknown_component_fails(workspace, run_vvkit):
    result = run_vvkit("update", "shop/ghost", cwd=workspace)
    assert result.returncode == 1
    assert "shop/ghost" in result.stderr or "ghost" in result.stderr


def test_starter_test_passes(workspace, run_vvkit, shared_redis_url):
    run_vvkit("new", "shop/coffee-machine", cwd=workspace, check=True)
    folder = workspace / "services" / "shop" / "coffee-machine"
    env = {**os.environ, "VV_TEST_REDIS_URL": shared_redis_url}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_starter_test_passes_with_entity(workspace, run_vvkit, shared_redis_url, database_url):
    run_vvkit("new", "shop/coffee-machine", cwd=workspace, check=True)
    folder = workspace / "services" / "shop" / "coffee-machine"
    service = folder / "service.py"
    source = service.read_text()
    source = source.replace("from vv import Service, rpc", "from vv import Entity, Field, Service, rpc")
    source = source.replace(
        "    @rpc(http=[\"GET\"])",
        "    entity = Entity(\"machine\", {\"name\": Field(str, unique=True)})\n\n    @rpc(http=[\"GET\"])",
        1,
    )
    service.write_text(source)
    env = {**os.environ, "VV_TEST_REDIS_URL": shared_redis_url, "VV_TEST_DATABASE_URL": database_url}

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120,
    )

    assert "entity = Entity(" in service.read_text()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


@pytest.mark.parametrize(
    "command", ["init", "new", "list", "update", "sync", "up", "down", "ps", "logs", "call", "doctor"]
)
def test_help_describes_every_option(run_vvkit, command):
    result = run_vvkit(command, "--help", check=True)
    options = [line for line in result.stdout.splitlines() if line.strip().startswith("-")]
    assert options
    for line in options:
        assert len(line.split("  ")) > 1 or "--help" in line, line


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        ("class_name=123", "class_name='123'"),
        ("class_name=class", "class_name='class'"),
        ("colour=blue", "unknown --data key 'colour'"),
        ("app=other", "vvkit sets 'app' itself"),
        ("component=other", "vvkit sets 'component' itself"),
    ],
)
def test_new_rejects_invalid_data(workspace, run_vvkit, pair, expected):
    before = snapshot(workspace)
    result = run_vvkit("new", "shop/machine", "--data", pair, cwd=workspace)

    assert result.returncode == 1
    assert expected in result.stderr
    assert snapshot(workspace) == before


def test_new_interactive_without_terminal_fails(workspace, run_vvkit):
    result = run_vvkit("new", "shop/machine", "--interactive", cwd=workspace)

    assert result.returncode == 1
    assert "--data" in result.stderr
    assert not (workspace / "services" / "shop").exists()


def test_new_missing_blueprint_folder_named(workspace, run_vvkit):
    result = run_vvkit("new", "shop/machine", "--blueprint", "./no-such-blueprint", cwd=workspace)

    assert result.returncode == 1
    assert "'./no-such-blueprint' not found" in result.stderr


def test_list_shows_class_from_source(workspace, run_vvkit):
    run_vvkit("new", "shop/machine", "--data", "class_name=Brewer", cwd=workspace, check=True)
    rows = json.loads(run_vvkit("list", "--json", cwd=workspace, check=True).stdout)

    assert rows[0]["class"] == "Brewer"


def test_init_inside_services_rejected(workspace, run_vvkit):
    result = run_vvkit("init", "services/inner", cwd=workspace)

    assert result.returncode == 1
    assert "inside the services/ folder" in result.stderr
    assert not (workspace / "services" / "inner").exists()


def test_workspace_option_missing_folder(tmp_path, run_vvkit):
    result = run_vvkit("list", "--workspace", str(tmp_path / "absent"))

    assert result.returncode == 1
    assert "does not exist" in result.stderr


def test_version_names_both_distributions(run_vvkit):
    result = run_vvkit("--version", check=True)

    assert result.stdout.startswith("vvkit 0.")
    assert "runtime" in result.stdout
