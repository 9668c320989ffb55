"""Values from config.yml and .env reach the container exactly as written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from deploy_helpers import load_compose, make_workspace, run_vvkit, schema_errors

from vvkit.deploy.quoting import yaml_quote

# Strings that YAML 1.1 would turn into booleans, numbers, dates or nulls.
YAML_AMBIGUOUS = ["yes", "no", "on", "off", "true", "False", "y", "N", "0123", "0x1F", "1e3", "1.5", "12:30", "2024-01-01", ".inf", "-.5"]

# Strings with characters that YAML, compose interpolation or .env parsing treat specially.
SPECIAL = [
    "",
    "$HOME",
    "${HOME}",
    "${HOME:-fallback}",
    "$$",
    "a$",
    "$(echo hi)",
    "100%",
    "a #b",
    "#not a comment",
    "a=b=c",
    "'single'",
    '"double"',
    "back\\slash",
    "line1\nline2",
    "tab\there",
    " padded ",
    "&anchor",
    "*alias",
    "!tag",
    "{a: 1}",
    "[1, 2]",
    "- item",
    ": colon",
    "key: value",
    "null",
    "~",
    "üñí©ødé",
    "emoji 🚀",
    "sep\u2028arator",
    "nel\x85",
    "bell\x07",
    "\ufeffbom",
]

PLAIN_WRITTEN = {f"PLAIN_{index}": value for index, value in enumerate(YAML_AMBIGUOUS)}
DUMPED = {f"DUMPED_{index}": value for index, value in enumerate(YAML_AMBIGUOUS + SPECIAL)}


def config_yml() -> str:
    lines = ["env:"]
    lines += [f"  {name}: {value}" for name, value in PLAIN_WRITTEN.items()]
    for name, value in DUMPED.items():
        # PyYAML's emitter writes YAML 1.1 line breaks raw when allow_unicode is on,
        # and its own reader then folds them; escape those values instead.
        raw_unicode = not any(char in value for char in "\x85\u2028\u2029")
        dumped = yaml.safe_dump({name: value}, allow_unicode=raw_unicode, width=1000)
        lines.append("  " + dumped.rstrip("\n").replace("\n", "\n  "))
    return "\n".join(lines) + "\n"


def dotenv_line(name: str, value: str) -> str:
    """Write one .env line in the quoting that keeps ``value`` literal."""
    if "\n" in value or "\t" in value or "'" in value:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        return f'{name}="{escaped}"'
    return f"{name}='{value}'"


DOTENV_VALUES = {f"DOTENV_{index}": value for index, value in enumerate(YAML_AMBIGUOUS + SPECIAL) if "\r" not in value}
DOTENV_WRITTEN = {  # (line as written, value the container gets)
    "UNQUOTED": ("UNQUOTED=a#b", "a#b"),
    "COMMENTED": ("COMMENTED=value # comment", "value"),
    "EQUALS": ("EQUALS=a=b", "a=b"),
    "EMPTY": ("EMPTY=", ""),
    "SPACES": ("SPACES =  two words  ", "two words"),
    "EXPORTED": ("export EXPORTED=1", "1"),
    "DOLLAR": ("DOLLAR=$HOME/x", "$HOME/x"),
    "YES": ("YES=yes", "yes"),
    "OCTAL": ("OCTAL=0123", "0123"),
    "ESCAPES": ('ESCAPES="a\\"b\\\\c\\n"', 'a"b\\c\n'),
    "UNKNOWN_ESCAPE": ('UNKNOWN_ESCAPE="\\d"', "\\d"),
    "SINGLE": ("SINGLE='$x \\n'", "$x \\n"),
}


def dotenv_text() -> str:
    lines = ["# comment line", ""]
    lines += [dotenv_line(name, value) for name, value in DOTENV_VALUES.items()]
    lines += [written for written, _ in DOTENV_WRITTEN.values()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = make_workspace(
        tmp_path_factory.mktemp("literals"),
        {"shop/user": {"config.yml": config_yml(), ".env": dotenv_text()}},
    )
    result = run_vvkit("sync", cwd=root)
    assert result.returncode == 0, result.stderr
    document = load_compose((root / "docker-compose.yml").read_text(encoding="utf-8"), {"HOME": "/root"})
    assert schema_errors(document) == []
    return document["services"]["shop-user"]["environment"]


@pytest.mark.parametrize(("name", "value"), sorted(PLAIN_WRITTEN.items()))
def test_plain_config_value_literal(environment, name, value):
    assert environment[name] == value


@pytest.mark.parametrize(("name", "value"), sorted(DUMPED.items()))
def test_quoted_config_value_literal(environment, name, value):
    assert environment[name] == value


@pytest.mark.parametrize(("name", "value"), sorted(DOTENV_VALUES.items()))
def test_dotenv_value_literal(environment, name, value):
    assert environment[name] == value


@pytest.mark.parametrize(("name", "case"), sorted(DOTENV_WRITTEN.items()))
def test_dotenv_syntax(environment, name, case):
    assert environment[name] == case[1]


def test_config_yml_wins_over_dotenv(tmp_path: Path):
    root = make_workspace(
        tmp_path / "ws",
        {"shop/user": {"config.yml": "env:\n  A: from-config\n  LOG_LEVEL: DEBUG\n", ".env": "A=from-env\nB=from-env\n"}},
    )
    run_vvkit("sync", cwd=root)
    environment = load_compose((root / "docker-compose.yml").read_text())["services"]["shop-user"]["environment"]

    assert environment["A"] == "from-config"
    assert environment["B"] == "from-env"
    assert environment["LOG_LEVEL"] == "DEBUG"


def test_user_password_replaces_secret(tmp_path: Path):
    root = make_workspace(tmp_path / "ws", {"shop/user": {".env": "PGPASSWORD=$ecret\n"}})
    run_vvkit("sync", cwd=root)
    environment = load_compose((root / "docker-compose.yml").read_text())["services"]["shop-user"]["environment"]

    assert environment["PGPASSWORD"] == "$ecret"
    assert environment["PGUSER"] == "vv"


@pytest.mark.parametrize("value", YAML_AMBIGUOUS + SPECIAL + ["\x00\x1b\x7f\x9f\ud7ff\ue000\U0010ffff"])
def test_yaml_quote_round_trip(value):
    quoted = yaml_quote(value)

    assert "\n" not in quoted
    assert yaml.safe_load(quoted) == value
    assert yaml.safe_load(f"key: {quoted}\n") == {"key": value}
