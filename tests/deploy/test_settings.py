"""vvkit.toml: every key that ``vvkit init`` and this repository write is accepted."""

from __future__ import annotations

from pathlib import Path

from vvkit.commands.init import VVKIT_TOML
from vvkit.deploy.settings import KNOWN_KEYS, read_settings
from vvkit.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]


def load(root: Path, toml: str) -> Workspace:
    root.mkdir()
    (root / "vvkit.toml").write_text(toml)
    return Workspace.load(root)


def test_init_toml_accepted(tmp_path):
    workspace = load(tmp_path / "ws", VVKIT_TOML.format(name="shop"))

    settings = read_settings(workspace)

    assert settings.name == "shop"
    assert settings.redis_cluster is True
    assert settings.api_port == 8080


def test_repository_toml_accepted():
    settings = read_settings(Workspace.load(REPO))

    assert settings.name == "vvkit"


def test_every_known_key_accepted(tmp_path):
    toml = (
        '[workspace]\nname = "shop"\n[registry]\nhost = "registry.test:5001"\ntag = "v1"\n'
        "[redis]\ncluster = false\nnodes = 1\n[api]\nport = 8081\n"
        '[kubernetes]\nnamespace = "prod"\ningress_host = "shop.test"\n'
    )
    written = {(table, line.split(" = ")[0]) for table, body in _tables(toml) for line in body}
    assert written == {(table, key) for table, keys in KNOWN_KEYS.items() for key in keys}

    settings = read_settings(load(tmp_path / "ws", toml))

    assert settings.registry_port == 5001
    assert settings.namespace == "prod"
    assert settings.ingress_host == "shop.test"


def _tables(toml: str):
    for block in toml.split("[")[1:]:
        header, _, body = block.partition("]\n")
        yield header, body.splitlines()
