"""What the local runner starts per component: names, replicas, instances and environment."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.run.conftest import VVKIT, make_workspace
from vvkit.errors import VvkitError
from vvkit.local.environment import load_model, process_specs
from vvkit.local.supervisor import _in_start_order
from vvkit.workspace import Workspace


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    # Scaffolding runs Copier four times; the tests only read the result, so they share it.
    folder = tmp_path_factory.mktemp("environment")
    env = {**os.environ, "XDG_CACHE_HOME": str(folder / "cache")}

    def run_vvkit(*args: str, cwd: Path = folder, check: bool = False) -> subprocess.CompletedProcess:
        result = subprocess.run([*VVKIT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        assert not check or result.returncode == 0, result.stderr
        return result

    root = make_workspace(folder, run_vvkit)
    run_vvkit("new", "shop/user", cwd=root, check=True)
    run_vvkit("new", "shop/api", "--blueprint", "api", cwd=root, check=True)
    echo = root / "services" / "shop" / "echo"
    (echo / "config.yml").write_text("replicas: 2\nenv:\n  GREETING: 'yes'\ndepends_on:\n  - user\n")
    (echo / ".env").write_text("GREETING=from-dotenv\nSECRET=s3\n")
    (root / "services" / "shop" / "user" / "config.yml").write_text("instances: [eu, us]\n")
    return Workspace.load(root)


def _specs(workspace: Workspace, wanted: list[str] | None = None):
    model, components = load_model(workspace, wanted or [])
    urls = {c.service_id: f"postgresql://postgres@127.0.0.1:5999/{c.service_id}" for c in components}
    return process_specs(model, components, "redis://127.0.0.1:7000/0", False, urls, 18080)


def test_specs_follow_replicas_and_instances(workspace):
    names = sorted(spec.name for spec in _specs(workspace))

    assert names == ["shop-api", "shop-echo-1", "shop-echo-2", "shop-user-eu", "shop-user-us"]


def test_specs_environment_matches_deployment(workspace):
    specs = {spec.name: spec for spec in _specs(workspace)}
    echo = specs["shop-echo-1"].environment

    assert echo["TRANSPORT"] == "redis://127.0.0.1:7000/0"
    assert echo["CLUSTER"] == "false"
    assert echo["DATABASE"] == "postgresql://postgres@127.0.0.1:5999/shop.echo"
    assert echo["SERVICE_NAME"] == str(workspace.root / "services" / "shop" / "echo")
    assert echo["APP"] == "shop"
    assert echo["COMPONENT"] == "echo"
    # config.yml wins over .env, and values stay literal strings.
    assert echo["GREETING"] == "yes"
    assert echo["SECRET"] == "s3"
    assert specs["shop-user-eu"].environment["INSTANCE"] == "eu"
    assert specs["shop-api"].environment["HTTP_PORT"] == "18080"
    assert specs["shop-api"].http_port == 18080
    assert specs["shop-echo-1"].http_port is None


def test_start_order_puts_dependencies_first_and_api_last(workspace):
    order = [spec.name for spec in _in_start_order(_specs(workspace))]

    assert order.index("shop-user-eu") < order.index("shop-echo-1")
    assert order.index("shop-user-us") < order.index("shop-echo-2")
    assert order[-1] == "shop-api"


def test_selected_components_only(workspace):
    assert sorted(spec.name for spec in _specs(workspace, ["shop/user"])) == ["shop-user-eu", "shop-user-us"]
    assert sorted(spec.name for spec in _specs(workspace, ["api"])) == ["shop-api"]


def test_unknown_component_rejected(workspace):
    with pytest.raises(VvkitError, match="no component 'shop/nope'"):
        _specs(workspace, ["shop/nope"])
