"""`vvkit sync` writes a valid, deterministic docker-compose.yml from the workspace."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_helpers import (
    DEFAULT_TOML,
    add_component,
    docker_compose_available,
    load_compose,
    make_workspace,
    run_vvkit,
    schema_errors,
)


REPOSITORY = Path(__file__).resolve().parents[2]


def sync_compose(root: Path) -> dict:
    result = run_vvkit("sync", cwd=root)
    assert result.returncode == 0, result.stderr
    return load_compose((root / "docker-compose.yml").read_text())


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return make_workspace(
        tmp_path / "shop",
        {
            "shop/api": {},
            "shop/user": {"config.yml": "replicas: 3\ndepends_on:\n  - machine\n"},
            "shop/machine": {"config.yml": "instances: [eu, us]\nenv:\n  REGION_COUNT: 2\n"},
            "drinkers/heavy": {"config.yml": "ports:\n  - '9100:9000'\ndepends_on: [shop/api]\n"},
        },
    )


def test_repository_workspace_validates(tmp_path: Path):
    if not any((REPOSITORY / "services").glob("*/*/service.py")):
        pytest.skip("the repository has no components yet")
    root = tmp_path / "repository"
    shutil.copytree(REPOSITORY / "services", root / "services", ignore=shutil.ignore_patterns("__pycache__", "tests"))
    toml = REPOSITORY / "vvkit.toml"
    (root / "vvkit.toml").write_text(toml.read_text() if toml.exists() else DEFAULT_TOML)

    document = sync_compose(root)

    assert schema_errors(document) == []
    for component in sorted((REPOSITORY / "services").glob("*/*/service.py")):
        app, name = component.parent.parent.name, component.parent.name
        assert any(service.startswith(f"{app}-{name}") for service in document["services"]), (app, name)


def test_generated_workspace_validates(shop: Path):
    document = sync_compose(shop)

    assert schema_errors(document) == []
    services = document["services"]
    assert sorted(services) == list(services)
    assert {"shop-api", "shop-user", "shop-machine-eu", "shop-machine-us", "drinkers-heavy"} <= set(services)
    assert {"pg-shop-api", "pg-shop-user", "pg-shop-machine", "pg-drinkers-heavy", "registry"} <= set(services)
    assert [f"redis-node-{i}" for i in range(6)] == sorted(s for s in services if s.startswith("redis-node-"))


def test_component_service_fields(shop: Path):
    services = sync_compose(shop)["services"]
    user = services["shop-user"]

    assert user["image"] == "localhost:5000/shop-user:latest"
    assert user["build"] == {"context": "services/shop/user"}
    assert user["restart"] == "unless-stopped"
    assert user["init"] is True
    assert user["networks"] == ["vv"]
    assert user["deploy"] == {"replicas": 3}
    assert user["depends_on"]["pg-shop-user"] == {"condition": "service_healthy"}
    assert user["depends_on"]["redis-node-0"] == {"condition": "service_healthy"}
    assert user["depends_on"]["shop-machine-eu"] == {"condition": "service_healthy"}
    assert user["depends_on"]["shop-machine-us"] == {"condition": "service_healthy"}
    assert "shop-api" not in user["depends_on"]
    assert services["drinkers-heavy"]["depends_on"]["shop-api"] == {"condition": "service_healthy"}
    assert services["drinkers-heavy"]["ports"] == ["9100:9000"]


def test_component_environment_in_compose(shop: Path):
    services = sync_compose(shop)["services"]

    assert services["shop-machine-eu"]["environment"] == {
        "APP": "shop",
        "CLUSTER": "true",
        "COMPONENT": "machine",
        "DATABASE": "postgresql://pg-shop-machine:5432/machine",
        "INSTANCE": "eu",
        "LIBRARY": "/service",
        "LOG_LEVEL": "INFO",
        "PGPASSWORD": "change-me",
        "PGUSER": "vv",
        "REGION_COUNT": "2",
        "SERVICE_NAME": "/service",
        "TRANSPORT": "redis://redis:6379/0",
        "VV_LOOP": "asyncio",
    }
    assert services["shop-api"]["environment"]["HTTP_PORT"] == "80"
    assert services["shop-api"]["ports"] == ["8080:80"]


def test_credentials_only_interpolated(shop: Path):
    sync_compose(shop)
    text = (shop / "docker-compose.yml").read_text()
    document = load_compose(text, {"VV_POSTGRES_PASSWORD": "s3cret", "VV_REGISTRY_PROXY_PASSWORD": "p"})
    database = document["services"]["pg-shop-user"]

    assert database["environment"]["POSTGRES_PASSWORD"] == "s3cret"
    assert document["services"]["shop-user"]["environment"]["PGPASSWORD"] == "s3cret"
    assert document["services"]["registry"]["environment"]["REGISTRY_PROXY_PASSWORD"] == "p"
    assert "s3cret" not in text
    assert '"${VV_POSTGRES_PASSWORD:-change-me}"' in text


def test_postgres_per_component(shop: Path):
    database = sync_compose(shop)["services"]["pg-shop-machine"]

    assert database["image"] == "postgres:16.4"
    assert database["volumes"] == ["pg-shop-machine:/var/lib/postgresql/data"]
    assert database["environment"]["POSTGRES_DB"] == "machine"
    check = database["healthcheck"]["test"]
    assert check[0] == "CMD-SHELL"
    assert "--host 127.0.0.1" in check[1]
    assert '"$POSTGRES_USER"' in check[1]


def test_redis_cluster_services(shop: Path):
    services = sync_compose(shop)["services"]
    node = services["redis-node-3"]
    create = services["redis-cluster-create"]

    assert node["networks"] == {"vv": {"aliases": ["redis"]}}
    assert "--cluster-enabled" in node["command"]
    check = node["healthcheck"]["test"][1]
    assert "cluster_state:ok" in check
    assert "cluster_slots_ok:16384" in check
    assert create["restart"] == "no"
    assert sorted(create["depends_on"]) == [f"redis-node-{i}" for i in range(6)]
    script = create["entrypoint"][2]
    assert "--cluster-replicas 1" in script
    assert '$(getent hosts "${node%:*}"' in script


def test_single_redis_when_not_cluster(tmp_path: Path):
    toml = DEFAULT_TOML.replace("cluster = true", "cluster = false")
    root = make_workspace(tmp_path / "ws", {"shop/user": {}}, toml=toml)
    document = sync_compose(root)
    services = document["services"]

    assert schema_errors(document) == []
    assert "redis" in services
    assert not [name for name in services if name.startswith("redis-node")]
    assert "redis-cluster-create" not in services
    assert services["shop-user"]["environment"]["CLUSTER"] == "false"
    assert list(services["shop-user"]["depends_on"]) == ["pg-shop-user", "redis"]


def test_second_sync_identical(shop: Path):
    sync_compose(shop)
    first = (shop / "docker-compose.yml").read_bytes()
    mtime = (shop / "docker-compose.yml").stat().st_mtime_ns

    result = run_vvkit("sync", cwd=shop)

    assert result.returncode == 0
    assert "identical  docker-compose.yml" in result.stderr
    assert (shop / "docker-compose.yml").read_bytes() == first
    assert (shop / "docker-compose.yml").stat().st_mtime_ns == mtime


def test_output_independent_of_creation_order(tmp_path: Path):
    first = make_workspace(tmp_path / "a", {"shop/b": {}, "shop/a": {}, "x/z": {}})
    second = make_workspace(tmp_path / "b", {"x/z": {}, "shop/a": {}, "shop/b": {}})

    assert sync_compose(first) == sync_compose(second)
    assert (first / "docker-compose.yml").read_bytes() == (second / "docker-compose.yml").read_bytes()


def test_check_exit_codes(shop: Path):
    sync_compose(shop)
    assert run_vvkit("sync", "--check", cwd=shop).returncode == 0

    add_component(shop, "shop/coffee")
    before = (shop / "docker-compose.yml").read_bytes()
    result = run_vvkit("sync", "--check", cwd=shop, in_process=False)

    assert result.returncode == 1
    assert result.stdout.startswith("--- a/docker-compose.yml\n+++ b/docker-compose.yml\n")
    assert '+  "shop-coffee":' in result.stdout
    assert (shop / "docker-compose.yml").read_bytes() == before


def test_check_without_file(shop: Path):
    result = run_vvkit("sync", "--check", cwd=shop)

    assert result.returncode == 1
    assert result.stdout.startswith("--- /dev/null\n")
    assert not (shop / "docker-compose.yml").exists()


def test_summary_table(shop: Path):
    result = run_vvkit("sync", cwd=shop, in_process=False)

    assert "create  docker-compose.yml" in result.stderr
    assert "shop.machine" in result.stderr
    assert "eu, us" in result.stderr
    assert "8080:80" in result.stderr
    assert "pg-drinkers-heavy" in result.stderr
    assert result.stdout == ""


def test_output_option(shop: Path, tmp_path: Path):
    target = tmp_path / "out" / "stack.yml"
    result = run_vvkit("sync", "--output", str(target), cwd=shop)
    document = load_compose(target.read_text())

    assert result.returncode == 0, result.stderr
    assert not (shop / "docker-compose.yml").exists()
    assert document["services"]["shop-user"]["build"]["context"] == "../shop/services/shop/user"


def test_workspace_template_override(shop: Path):
    (shop / "docker-compose.yml.j2").write_text(
        "# custom\nservices:\n{% for unit in model.units %}\n  {{ unit.name }}:\n    image: {{ model.image(unit) | compose }}\n{% endfor %}\n"
    )
    document = sync_compose(shop)

    assert (shop / "docker-compose.yml").read_text().startswith("# custom\n")
    assert sorted(document["services"]) == ["drinkers-heavy", "shop-api", "shop-machine-eu", "shop-machine-us", "shop-user"]


def test_override_template_error_names_file(shop: Path):
    (shop / "docker-compose.yml.j2").write_text("services:\n{% for x in %}\n")
    result = run_vvkit("sync", cwd=shop)

    assert result.returncode == 1
    assert "docker-compose.yml.j2:2" in result.stderr


@pytest.mark.skipif(not docker_compose_available(), reason="no docker compose plugin on this machine")
def test_docker_compose_config_accepts(shop: Path):
    sync_compose(shop)
    result = subprocess.run(["docker", "compose", "config", "-q"], cwd=shop, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr


def unsorted_mappings(node, path="") -> list[str]:
    """Return the paths of mappings whose keys are out of order; lists keep their order (commands)."""
    found = []
    if isinstance(node, dict):
        if list(node) != sorted(node):
            found.append(path or "/")
        for key, value in node.items():
            found += unsorted_mappings(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found += unsorted_mappings(item, f"{path}[{index}]")
    return found


def test_keys_sorted(shop: Path):
    add_component(shop, "aa/first", {"config.yml": "depends_on: [shop/user]\n"})
    add_component(shop, "shop/zz", {"config.yml": "depends_on: [aa/first]\n"})
    document = sync_compose(shop)

    assert unsorted_mappings(document) == []
    assert document["volumes"] == {name: {} for name in sorted(document["volumes"])}


def test_repository_compose_file_is_current():
    # The committed docker-compose.yml of this repository must be what
    # `vvkit sync` writes today, so that `vvkit up` under Docker runs the
    # services as they are.
    result = subprocess.run(
        [sys.executable, "-m", "vvkit", "sync", "--check", "--workspace", str(REPOSITORY)],
        capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
