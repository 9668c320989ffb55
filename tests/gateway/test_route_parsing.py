"""Route parsing and the response envelope of the HTTP gateway, without a server."""

from __future__ import annotations

import pytest

from vv._errors import InvalidRequest, NotFound, RequestTimeout
from vv.gateway._envelope import error_body, success_body
from vv.gateway._routes import Route, merge_kwargs, parse_body, parse_path, parse_query


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/user", Route("user", "request", [])),
        ("/user/", Route("user", "request", [])),
        ("/user/request", Route("user", "request", [])),
        ("/user/list", Route("user", "list", [])),
        ("/user/7", Route("user", "request", [7])),
        ("/coffee/buy/3/12", Route("coffee", "buy", [3, 12])),
        ("/stats/coffee/user/5", Route("stats", "coffee_user", [5])),
        ("/stats/level/user/5", Route("stats", "level_user", [5])),
        ("/coffee-machine/Brew/0042", Route("coffee-machine", "brew", [42])),
        ("//stats//coffee", Route("stats", "coffee", [])),
    ],
)
def test_parse_path_maps_segments(path, expected):
    assert parse_path(path) == expected


def test_parse_path_keeps_numbers_in_order_between_words():
    route = parse_path("/stats/coffee/1/user/2")

    assert route.method == "coffee_user"
    assert route.args == [1, 2]


@pytest.mark.parametrize(
    "path",
    ["/", "", "/User", "/9lives", "/-user", "/user-", "/user/_record_get/1", "/user/get_1", "/user/a.b", "/user/-3", "/user/1.5"],
)
def test_parse_path_rejects_unreachable_paths(path):
    with pytest.raises(NotFound) as caught:
        parse_path(path)

    assert caught.value.code == 404


def test_parse_path_names_bad_segment():
    with pytest.raises(NotFound, match="'_record_get'"):
        parse_path("/user/_record_get/1")


def test_parse_query_repeated_name_becomes_list():
    kwargs = parse_query([("name", "M1"), ("tag", "a"), ("tag", "b"), ("tag", "c")])

    assert kwargs == {"name": "M1", "tag": ["a", "b", "c"]}


def test_parse_body_empty_gives_no_arguments():
    assert parse_body(b"") == {}
    assert parse_body(b"  \n") == {}


def test_parse_body_decodes_object():
    assert parse_body(b'{"name": "M1", "caffeine": 40}') == {"name": "M1", "caffeine": 40}


def test_parse_body_invalid_json_names_parse_error():
    with pytest.raises(InvalidRequest) as caught:
        parse_body(b'{"name": ')

    assert caught.value.code == 400
    assert caught.value.text.startswith("invalid JSON body: Expecting value: line 1 column 10")


def test_parse_body_invalid_utf8_is_invalid_json():
    with pytest.raises(InvalidRequest, match="invalid JSON body"):
        parse_body(b'{"name": "\xff"}')


@pytest.mark.parametrize(
    ("body", "kind"),
    [(b"[1, 2]", "array"), (b'"M1"', "string"), (b"40", "number"), (b"true", "boolean"), (b"null", "null")],
)
def test_parse_body_rejects_non_object(body, kind):
    with pytest.raises(InvalidRequest, match=f"expected an object, got {kind}"):
        parse_body(body)


def test_merge_kwargs_combines_query_and_body():
    assert merge_kwargs({"timestamp": "2026-01-01T00:00:00Z"}, {"note": "x"}) == {
        "timestamp": "2026-01-01T00:00:00Z",
        "note": "x",
    }


def test_merge_kwargs_rejects_name_in_both():
    with pytest.raises(InvalidRequest, match="both in the query and in the JSON body: name"):
        merge_kwargs({"name": "a", "x": "1"}, {"name": "b"})


def test_envelope_success():
    assert success_body({"id": 1}) == {"response": {"id": 1}}
    assert success_body(None) == {"response": None}


def test_envelope_error_carries_code_and_text():
    error = RequestTimeout("caffeine-manager.user.list timed out after 10.0 s")

    assert error_body(error) == {
        "error_code": 504,
        "error_text": "caffeine-manager.user.list timed out after 10.0 s",
    }
