"""Errors name the file, the key and the line, and leave docker-compose.yml untouched."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from deploy_helpers import DEFAULT_TOML, make_workspace

from vvkit.cli import main

SENTINEL = b"# hand-written before the sync\nservices: {}\n"

# (case id, components as {"app/component": {file: text}}, vvkit.toml or None, expected message parts)
CASES = [
    ("no service.py", {"shop/user": {"service.py": ""}}, None, ["no Service subclass", "services/shop/user/service.py"]),
    (
        "two classes",
        {"shop/user": {"service.py": "from vv import Service\nclass A(Service): ...\nclass B(Service): ...\n"}},
        None,
        ["2 Service subclasses (A, B)", "keep one class"],
    ),
    ("python syntax", {"shop/user": {"service.py": "class (:\n"}}, None, ["service.py:1", "fix the Python syntax"]),
    ("yaml syntax", {"shop/user": {"config.yml": "replicas: 2\nenv: [a\n"}}, None, ["config.yml:3", "fix the YAML syntax"]),
    ("unknown key", {"shop/user": {"config.yml": "replicas: 2\nreplica: 3\n"}}, None, ["config.yml:2", "'replica'", "unknown key"]),
    ("null env value", {"shop/user": {"config.yml": "env:\n  A: x\n  B:\n"}}, None, ["config.yml:3", "'B'", "null"]),
    ("tilde env value", {"shop/user": {"config.yml": "env:\n  B: ~\n"}}, None, ["config.yml:2", "'B'", "null"]),
    ("list env value", {"shop/user": {"config.yml": "env:\n  B: [1]\n"}}, None, ["config.yml:2", "'B'", "not a list"]),
    ("bad env name", {"shop/user": {"config.yml": "env:\n  1B: x\n"}}, None, ["config.yml:2", "'1B'", "invalid variable name"]),
    ("bad replicas", {"shop/user": {"config.yml": "replicas: two\n"}}, None, ["config.yml:1", "'replicas'", "whole number"]),
    ("zero replicas", {"shop/user": {"config.yml": "replicas: 0\n"}}, None, ["config.yml:1", "at least 1"]),
    ("bad instance", {"shop/user": {"config.yml": "instances:\n  - EU\n"}}, None, ["config.yml:2", "'instances'", "'EU'"]),
    ("twice instance", {"shop/user": {"config.yml": "instances: [eu, eu]\n"}}, None, ["config.yml:1", "listed twice"]),
    ("bad port", {"shop/user": {"config.yml": "ports:\n  - 70000:80\n"}}, None, ["config.yml:2", "'ports'", "'70000:80'"]),
    ("duplicate key", {"shop/user": {"config.yml": "env:\n  A: 1\n  A: 2\n"}}, None, ["config.yml:3", "'A'", "twice"]),
    ("bad resource", {"shop/user": {"config.yml": "resources:\n  limits:\n    cpu: lots\n"}}, None, ["config.yml:3", "resources.limits.cpu"]),
    ("not a mapping", {"shop/user": {"config.yml": "- a\n"}}, None, ["config.yml:1", "mapping"]),
    ("dotenv without =", {"shop/user": {".env": "A=1\nB\n"}}, None, [".env:2", "'B'", "NAME="]),
    ("dotenv open quote", {"shop/user": {".env": "A='x\n"}}, None, [".env:1", "'A'", "closing"]),
    ("dotenv twice", {"shop/user": {".env": "A=1\nA=2\n"}}, None, [".env:2", "'A'", "twice"]),
    (
        "host port twice",
        {"shop/user": {"config.yml": "ports: ['9000:1']\n"}, "shop/machine": {"config.yml": "ports: ['9000:2']\n"}},
        None,
        ["host port 9000/tcp", "shop-machine", "shop-user", "config.yml:1"],
    ),
    ("api port taken", {"shop/api": {}, "shop/user": {"config.yml": "ports: ['8080:1']\n"}}, None, ["host port 8080/tcp", "api.port"]),
    ("registry port taken", {"shop/user": {"config.yml": "ports: ['5000:1']\n"}}, None, ["host port 5000/tcp", "registry"]),
    ("replicas with port", {"shop/user": {"config.yml": "replicas: 2\nports: ['9000:1']\n"}}, None, ["2 replicas", "9000"]),
    ("one compose name", {"a-b/c": {}, "a/b-c": {}}, None, ["'a-b-c'", "services/a-b/c", "services/a/b-c"]),
    ("instance name clash", {"a/b": {"config.yml": "instances: [c]\n"}, "a/b-c": {}}, None, ["'a-b-c'", "instance c"]),
    ("missing dependency", {"shop/user": {"config.yml": "depends_on:\n  - ghost\n"}}, None, ["config.yml:2", "shop/ghost", "does not exist"]),
    ("self dependency", {"shop/user": {"config.yml": "depends_on: [user]\n"}}, None, ["config.yml:1", "itself"]),
    (
        "dependency cycle",
        {"shop/a": {"config.yml": "depends_on: [b]\n"}, "shop/b": {"config.yml": "depends_on: [a]\n"}},
        None,
        ["cycle", "shop-a", "shop-b"],
    ),
    ("bad folder name", {"shop/Bad_Name": {"service.py": "from vv import Service\nclass X(Service): ...\n"}}, None, ["'Bad_Name'", "rename the folder"]),
    ("few redis nodes", {"shop/user": {}}, DEFAULT_TOML.replace("nodes = 6", "nodes = 2"), ["vvkit.toml", "redis.nodes", "at least 3"]),
    ("wrong toml type", {"shop/user": {}}, DEFAULT_TOML.replace("port = 8080", 'port = "8080"'), ["api.port", "expected int"]),
    (
        "unknown toml key",
        {"shop/user": {}},
        DEFAULT_TOML.replace("cluster = true", "clustr = false"),
        ["vvkit.toml", "'redis.clustr'", "unknown key", "cluster, nodes", "did you mean 'cluster'"],
    ),
    (
        "unknown toml table",
        {"shop/user": {}},
        DEFAULT_TOML.replace("[redis]", "[rediss]"),
        ["vvkit.toml", "'rediss'", "unknown table", "workspace, registry, redis, api, kubernetes"],
    ),
    ("misspelt workspace table", {"shop/user": {}}, DEFAULT_TOML.replace("[workspace]", "[workspce]"), ["vvkit.toml", "'workspce'", "unknown table"]),
    ("top-level toml key", {"shop/user": {}}, 'nodes = 3\n' + DEFAULT_TOML, ["vvkit.toml", "'nodes'", "unknown top-level key"]),
    ("nested toml table", {"shop/user": {}}, DEFAULT_TOML + "[api.tls]\ncert = 'x'\n", ["vvkit.toml", "'api.tls'", "unknown key", "api keys: port"]),
    ("toml key without table", {"shop/user": {}}, "[kubernetes]\nnamespace = 'x'\nport = 80\n", ["'kubernetes.port'", "namespace, ingress_host"]),
]


def run_sync(root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    """Run the CLI entry point in this process, like the installed ``vvkit`` script."""
    monkeypatch.chdir(root)
    monkeypatch.delenv("VVKIT_WORKSPACE", raising=False)
    monkeypatch.setattr(sys, "argv", ["vvkit", "sync", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("components", "toml", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_sync_error(tmp_path, monkeypatch, capsys, components, toml, expected):
    root = make_workspace(tmp_path / "ws", components, toml=toml or DEFAULT_TOML)
    (root / "docker-compose.yml").write_bytes(SENTINEL)

    code, stderr = run_sync(root, monkeypatch, capsys)

    assert code == 1
    assert stderr.startswith("error: ")
    assert stderr.count("\n") == 1, stderr
    for part in expected:
        assert part in stderr
    assert (root / "docker-compose.yml").read_bytes() == SENTINEL
    assert [p.name for p in root.iterdir() if p.name.startswith(".docker-compose")] == []


def test_no_components(tmp_path, monkeypatch, capsys):
    root = make_workspace(tmp_path / "ws", {})

    code, stderr = run_sync(root, monkeypatch, capsys)

    assert code == 1
    assert "no components" in stderr
    assert "vvkit new" in stderr
    assert not (root / "docker-compose.yml").exists()


def test_no_workspace(tmp_path, monkeypatch, capsys):
    code, stderr = run_sync(tmp_path, monkeypatch, capsys)

    assert code == 1
    assert "vvkit.toml" in stderr


def test_failed_write_keeps_file(tmp_path, monkeypatch, capsys):
    root = make_workspace(tmp_path / "ws", {"shop/user": {}})
    (root / "docker-compose.yml").write_bytes(SENTINEL)

    def fail_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr("vvkit.deploy.output.os.replace", fail_replace)
    with pytest.raises(OSError, match="disk full"):
        run_sync(root, monkeypatch, capsys)

    assert (root / "docker-compose.yml").read_bytes() == SENTINEL
    assert sorted(p.name for p in root.iterdir()) == ["docker-compose.yml", "services", "vvkit.toml"]
