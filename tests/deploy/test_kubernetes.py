"""`vvkit sync --target kubernetes` writes a valid Kustomize base from the same model as compose."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from deploy_helpers import (
    DEFAULT_TOML,
    add_component,
    container_environment,
    expand_kubernetes,
    load_compose,
    load_manifests,
    make_workspace,
    run_vvkit,
)
from test_literals import SPECIAL, YAML_AMBIGUOUS, config_yml, dotenv_text

REPOSITORY = Path(__file__).resolve().parents[2]
BASE = Path("deploy/kubernetes")
KUBERNETES_VERSION = "1.30.0"
HAS_KUBECTL = shutil.which("kubectl") is not None

TOML_WITH_INGRESS = DEFAULT_TOML + '[kubernetes]\ningress_host = "shop.example.test"\n'


def sync_kubernetes(root: Path, *args: str) -> dict[str, list[dict]]:
    result = run_vvkit("sync", "--target", "kubernetes", *args, cwd=root)
    assert result.returncode == 0, result.stderr
    return load_manifests(root / BASE)


def validation_failures(manifests: dict[str, list[dict]]) -> list[str]:
    failures = []
    for path, documents in manifests.items():
        if path == "kustomization.yaml":
            continue
        for document in documents:
            try:
                kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                failures.append(f"{path} {document['kind']}/{document['metadata']['name']}: {exc.message}")
    return failures


def by_kind(manifests: dict[str, list[dict]], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for docs in manifests.values() for doc in docs if doc["kind"] == kind}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_workspace(
        tmp_path_factory.mktemp("k8s") / "shop",
        {
            "shop/api": {"config.yml": "instances: [eu, us]\nports: []\n"},
            "shop/user": {
                "config.yml": config_yml() + "replicas: 3\nresources:\n  limits:\n    memory: 1Gi\n",
                ".env": dotenv_text(),
            },
            "shop/machine": {"config.yml": "instances: [big, small]\ndepends_on: [user]\nports: ['9100:9000/udp']\n"},
            "drinkers/heavy": {"config.yml": "env:\n  TRANSPORT: redis://elsewhere:6379/0\n"},
        },
        toml=TOML_WITH_INGRESS,
    )


@pytest.fixture(scope="module")
def manifests(shop: Path) -> dict[str, list[dict]]:
    return sync_kubernetes(shop)


def test_generated_base_validates(manifests):
    assert validation_failures(manifests) == []


def test_repository_workspace_validates(tmp_path: Path):
    if not any((REPOSITORY / "services").glob("*/*/service.py")):
        pytest.skip("the repository has no components yet")
    root = tmp_path / "repository"
    shutil.copytree(REPOSITORY / "services", root / "services", ignore=shutil.ignore_patterns("__pycache__", "tests"))
    toml = REPOSITORY / "vvkit.toml"
    (root / "vvkit.toml").write_text(toml.read_text() if toml.exists() else DEFAULT_TOML)

    manifests = sync_kubernetes(root)

    assert validation_failures(manifests) == []
    assert by_kind(manifests, "Deployment")


def test_files_of_base(manifests):
    assert sorted(manifests) == [
        "components/drinkers-heavy.yaml",
        "components/shop-api.yaml",
        "components/shop-machine.yaml",
        "components/shop-user.yaml",
        "databases/pg-drinkers-heavy.yaml",
        "databases/pg-shop-api.yaml",
        "databases/pg-shop-machine.yaml",
        "databases/pg-shop-user.yaml",
        "kustomization.yaml",
        "namespace.yaml",
        "redis.yaml",
        "runtime-config.yaml",
        "secret.yaml",
    ]
    kustomization = manifests["kustomization.yaml"][0]
    assert kustomization["namespace"] == "shop"
    assert kustomization["resources"] == sorted(path for path in manifests if path != "kustomization.yaml")
    assert {"name": "shop-user", "newName": "localhost:5000/shop-user", "newTag": "latest"} in kustomization["images"]


def test_deployments_per_instance(manifests):
    deployments = by_kind(manifests, "Deployment")

    assert sorted(deployments) == ["drinkers-heavy", "shop-api-eu", "shop-api-us", "shop-machine-big", "shop-machine-small", "shop-user"]
    assert deployments["shop-user"]["spec"]["replicas"] == 3
    assert deployments["shop-machine-big"]["spec"]["replicas"] == 1
    container = deployments["shop-user"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "shop-user"
    assert container["resources"] == {"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": "50m", "memory": "64Mi"}}
    assert container["livenessProbe"]["exec"]["command"][:2] == ["python", "-c"]
    assert "'health'" in container["livenessProbe"]["exec"]["command"][2]
    ports = deployments["shop-machine-big"]["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert ports == [{"containerPort": 9000, "protocol": "UDP"}]


def test_api_service_and_ingress(manifests):
    services = by_kind(manifests, "Service")
    ingresses = by_kind(manifests, "Ingress")

    assert services["shop-api-eu"]["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    assert services["shop-api-eu"]["spec"]["selector"] == {"app.kubernetes.io/name": "shop-api-eu"}
    assert sorted(ingresses) == ["shop-api-eu", "shop-api-us"]
    assert ingresses["shop-api-us"]["spec"]["rules"][0]["host"] == "us.shop.example.test"
    assert "shop-user" not in services


def test_databases(manifests):
    statefulsets = by_kind(manifests, "StatefulSet")
    services = by_kind(manifests, "Service")
    database = statefulsets["pg-shop-user"]

    assert services["pg-shop-user"]["spec"]["clusterIP"] == "None"
    assert database["spec"]["serviceName"] == "pg-shop-user"
    assert database["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "1Gi"
    probe = database["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"]
    assert "--host 127.0.0.1" in probe[2]


def test_redis_cluster(manifests):
    statefulset = by_kind(manifests, "StatefulSet")["redis-node"]
    job = by_kind(manifests, "Job")["redis-cluster-create"]
    services = by_kind(manifests, "Service")

    assert statefulset["spec"]["replicas"] == 6
    assert services["redis-node"]["spec"]["clusterIP"] == "None"
    assert services["redis"]["spec"]["selector"] == {"app.kubernetes.io/name": "redis-node"}
    command = statefulset["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--cluster-announce-hostname") + 1] == "$(POD_NAME).redis-node"
    script = expand_kubernetes(job["spec"]["template"]["spec"]["containers"][0]["command"][2], {})
    assert "redis-node-5.redis-node" in script
    assert '$(getent hosts "${node%:*}"' in script
    assert "--cluster-replicas 1" in script


def test_single_redis(tmp_path: Path):
    root = make_workspace(tmp_path / "ws", {"shop/user": {}}, toml=DEFAULT_TOML.replace("cluster = true", "cluster = false"))
    manifests = sync_kubernetes(root)

    assert validation_failures(manifests) == []
    assert "redis" in by_kind(manifests, "Deployment")
    assert "redis-node" not in by_kind(manifests, "StatefulSet")
    assert by_kind(manifests, "ConfigMap")["vv-runtime"]["data"]["CLUSTER"] == "false"


def test_secret_placeholders_only(shop: Path, manifests):
    secret = by_kind(manifests, "Secret")["vv-postgres"]
    readme = (shop / BASE / "README.md").read_text()

    assert secret["stringData"] == {"password": "change-me", "user": "vv"}
    assert "PLACEHOLDER" in (shop / BASE / "secret.yaml").read_text()
    assert "secretGenerator" in readme
    assert "kubectl apply -k" in readme


def test_environment_equals_compose(shop: Path, manifests):
    result = run_vvkit("sync", cwd=shop)
    assert result.returncode == 0, result.stderr
    compose = load_compose((shop / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    config_maps = {name: doc["data"] for name, doc in by_kind(manifests, "ConfigMap").items()}
    secrets = {name: doc["stringData"] for name, doc in by_kind(manifests, "Secret").items()}

    deployments = by_kind(manifests, "Deployment")
    assert set(deployments) == {name for name in compose if name in deployments}
    for name, deployment in deployments.items():
        assert container_environment(deployment, config_maps, secrets) == compose[name]["environment"], name
    user = container_environment(deployments["shop-user"], config_maps, secrets)
    assert [user[f"DUMPED_{i}"] for i in range(len(YAML_AMBIGUOUS + SPECIAL))] == YAML_AMBIGUOUS + SPECIAL
    assert container_environment(deployments["drinkers-heavy"], config_maps, secrets)["TRANSPORT"] == "redis://elsewhere:6379/0"


def test_second_sync_identical(shop: Path, manifests):
    before = {path: path.read_bytes() for path in (shop / BASE).rglob("*") if path.is_file()}
    result = run_vvkit("sync", "--target", "kubernetes", cwd=shop)

    assert result.returncode == 0
    assert result.stderr.count("identical") == len(before)
    assert {path: path.read_bytes() for path in (shop / BASE).rglob("*") if path.is_file()} == before
    assert run_vvkit("sync", "--target", "kubernetes", "--check", cwd=shop).returncode == 0


def test_check_and_stale_files(tmp_path: Path):
    root = make_workspace(tmp_path / "ws", {"shop/user": {}, "shop/coffee": {}})
    sync_kubernetes(root)
    (root / BASE / "mine.yaml").write_text("# written by hand\n")

    shutil.rmtree(root / "services" / "shop" / "coffee")
    add_component(root, "shop/machine")
    check = run_vvkit("sync", "--target", "kubernetes", "--check", cwd=root)

    assert check.returncode == 1
    assert "+++ /dev/null" in check.stdout
    assert "--- /dev/null" in check.stdout
    assert (root / BASE / "components" / "shop-coffee.yaml").exists()

    result = run_vvkit("sync", "--target", "kubernetes", cwd=root)
    assert "delete  deploy/kubernetes/components/shop-coffee.yaml" in result.stderr
    assert "create  deploy/kubernetes/components/shop-machine.yaml" in result.stderr
    assert not (root / BASE / "databases" / "pg-shop-coffee.yaml").exists()
    assert (root / BASE / "mine.yaml").read_text() == "# written by hand\n"


def test_output_option(tmp_path: Path):
    root = make_workspace(tmp_path / "ws", {"shop/user": {}})
    result = run_vvkit("sync", "--target", "kubernetes", "--output", "k8s/base", cwd=root)

    assert result.returncode == 0, result.stderr
    assert (root / "k8s" / "base" / "kustomization.yaml").exists()
    assert not (root / BASE).exists()


def test_too_long_name_rejected(tmp_path: Path):
    app, component = "a" * 30, "b" * 30
    root = make_workspace(tmp_path / "ws", {f"{app}/{component}": {}})
    (root / BASE).mkdir(parents=True)
    result = run_vvkit("sync", "--target", "kubernetes", cwd=root)

    assert result.returncode == 1
    assert f"pg-{app}-{component}" in result.stderr
    assert "shorten" in result.stderr
    assert list((root / BASE).iterdir()) == []


def test_invalid_namespace_rejected(tmp_path: Path):
    root = make_workspace(tmp_path / "ws", {"shop/user": {}}, toml=DEFAULT_TOML + '[kubernetes]\nnamespace = "Shop_1"\n')
    result = run_vvkit("sync", "--target", "kubernetes", cwd=root)

    assert result.returncode == 1
    assert "kubernetes.namespace" in result.stderr


@pytest.mark.skipif(not HAS_KUBECTL, reason="kubectl is not installed")
def test_kubectl_kustomize_builds(shop: Path, manifests):
    result = subprocess.run(["kubectl", "kustomize", str(shop / BASE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    documents = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    images = {
        container["image"]
        for doc in documents
        if doc["kind"] == "Deployment"
        for container in doc["spec"]["template"]["spec"]["containers"]
    }

    assert "localhost:5000/shop-user:latest" in images
    assert all(doc["metadata"].get("namespace") == "shop" for doc in documents if doc["kind"] != "Namespace")


@pytest.mark.skipif(not HAS_KUBECTL, reason="kubectl is not installed")
def test_readme_overlay_replaces_secret(shop: Path, manifests, tmp_path: Path):
    overlay = shop / "overlays" / "production"
    overlay.mkdir(parents=True, exist_ok=True)
    (overlay / "postgres.env").write_text("user=vv\npassword=real-one\n")
    (overlay / "kustomization.yaml").write_text(
        "resources:\n  - ../../deploy/kubernetes\nsecretGenerator:\n"
        "  - name: vv-postgres\n    behavior: replace\n    envs:\n      - postgres.env\n"
    )
    result = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    secret = next(doc for doc in yaml.safe_load_all(result.stdout) if doc and doc["kind"] == "Secret")

    assert "change-me" not in result.stdout
    assert secret["metadata"]["name"] == "vv-postgres"
    assert secret["data"]["password"] == "cmVhbC1vbmU="
