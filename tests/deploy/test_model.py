"""The deployment model and the environment it gives each component."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_helpers import make_workspace

from vvkit.deploy.model import build_model, component_environment
from vvkit.workspace import Workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    root = make_workspace(
        tmp_path / "ws",
        {
            "shop/api": {},
            "shop/user": {"config.yml": "instances: [eu]\nenv:\n  A: '1'\n", ".env": "B=2\nA=0\n"},
        },
    )
    return Workspace.load(root)


def component(workspace: Workspace, name: str):
    return next(c for c in workspace.components() if c.name == name)


def test_local_environment(workspace: Workspace):
    user = component(workspace, "user")
    environment = component_environment(
        workspace, user, "eu", local=True, transport="redis://127.0.0.1:7000/0", cluster=False, database="postgresql://u:p@127.0.0.1:5433/x"
    )

    assert environment == {
        "A": "1",
        "APP": "shop",
        "B": "2",
        "CLUSTER": "false",
        "COMPONENT": "user",
        "DATABASE": "postgresql://u:p@127.0.0.1:5433/x",
        "INSTANCE": "eu",
        "LIBRARY": str(user.path),
        "LOG_LEVEL": "INFO",
        "SERVICE_NAME": str(user.path),
        "TRANSPORT": "redis://127.0.0.1:7000/0",
        "VV_LOOP": "asyncio",
    }
    assert list(environment) == sorted(environment)


def test_local_api_port(workspace: Workspace):
    api = component(workspace, "api")

    assert component_environment(workspace, api, local=True, transport="redis://x")["HTTP_PORT"] == "8080"
    assert component_environment(workspace, api, local=True, transport="redis://x", http_port=9001)["HTTP_PORT"] == "9001"
    assert "DATABASE" not in component_environment(workspace, api, local=True, transport="redis://x")


def test_local_needs_transport(workspace: Workspace):
    with pytest.raises(ValueError, match="transport"):
        component_environment(workspace, component(workspace, "api"), local=True)


def test_model_units_match_environment(workspace: Workspace):
    model = build_model(workspace)
    units = {unit.name: unit for unit in model.units}

    assert sorted(units) == ["shop-api", "shop-user-eu"]
    assert units["shop-user-eu"].environment == component_environment(workspace, component(workspace, "user"), "eu")
    assert units["shop-user-eu"].secret_environment == {"PGPASSWORD": "password", "PGUSER": "user"}
    assert [port.spec for port in units["shop-api"].ports] == ["8080:80"]
    assert model.image(units["shop-api"]) == "localhost:5000/shop-api:latest"
