"""Parsing of `vvkit call` arguments: KEY=VALUE pairs and --json."""

from __future__ import annotations

import pytest

from vvkit.commands.call import parse_arguments
from vvkit.errors import VvkitError


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        ("n=3", 3),
        ("n=3.5", 3.5),
        ("flag=true", True),
        ("nothing=null", None),
        ('items=[1, "a"]', [1, "a"]),
        ('obj={"a": 1}', {"a": 1}),
        ("name=M1", "M1"),
        ('quoted="0123"', "0123"),
        ("leading=0123", "0123"),
        ("empty=", ""),
        ("text=a=b", "a=b"),
        ("spaced=hello world", "hello world"),
    ],
)
def test_pair_value_json_or_string(pair, expected):
    args, kwargs = parse_arguments([pair], None)

    assert args == []
    assert list(kwargs.values()) == [expected]
    assert type(list(kwargs.values())[0]) is type(expected)


def test_json_object_merges_with_pairs():
    args, kwargs = parse_arguments(["caffeine=40"], '{"name": "M1", "caffeine": 10}')

    assert args == []
    assert kwargs == {"name": "M1", "caffeine": 40}


def test_json_array_gives_positional_args():
    args, kwargs = parse_arguments([], '[3, "x"]')

    assert args == [3, "x"]
    assert kwargs == {}


@pytest.mark.parametrize("pair", ["novalue", "=3", "bad-key=1", "1x=2"])
def test_invalid_pair_rejected(pair):
    with pytest.raises(VvkitError, match="KEY=VALUE"):
        parse_arguments([pair], None)


@pytest.mark.parametrize("text", ["{", "3", '"text"'])
def test_invalid_json_rejected(text):
    with pytest.raises(VvkitError, match="invalid --json"):
        parse_arguments([], text)


def test_repeated_pair_rejected():
    with pytest.raises(VvkitError, match="name is given twice"):
        parse_arguments(["name=Lungo", "caffeine=70", "name=Lungo2"], None)
