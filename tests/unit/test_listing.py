"""Listing parameters → ListQuery, strictly (docs/api.md, Listing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

import pytest

from tornado_files.errors import InvalidParameter
from tornado_files.listing import encode_cursor, next_url, parse_list_query
from tornado_files.models import ListQuery


def parse(**params: str) -> ListQuery:
    return parse_list_query({k: [v] for k, v in params.items()})


def test_defaults():
    assert parse() == ListQuery(sort="-added", limit=50)


def test_every_parameter():
    query = parse_list_query({
        "mime_type": ["image/*"], "size_greater_than": ["10"], "size_less_than": ["99"],
        "added_since": ["2026-11-22T10:00:00Z"], "modified_since": ["2026-11-22T12:00:00+02:00"],
        "filename": ["Rep"], "route": ["/api/avatars"], "owner": ["alice"], "sha256": ["ab"],
        "data.tag": ["x"], "data.b": ["y"], "sort": ["size"], "limit": ["1000"],
        "cursor": [encode_cursor("size", (5, "f" * 32))],
    })
    assert query == ListQuery(
        mime_type="image/*", size_greater_than=10, size_less_than=99,
        added_since=datetime(2026, 11, 22, 10, tzinfo=UTC),
        modified_since=datetime(2026, 11, 22, 10, tzinfo=UTC), filename="Rep",
        route="/api/avatars", owner="alice", sha256="ab",
        data_equals=(("b", "y"), ("tag", "x")), sort="size", limit=1000, after=(5, "f" * 32))


def test_naive_times_are_utc():
    assert parse(added_since="2026-11-22T10:00:00").added_since == \
        datetime(2026, 11, 22, 10, tzinfo=UTC)


@pytest.mark.parametrize("params", [
    {"sort": "name"}, {"limit": "0"}, {"limit": "1001"}, {"limit": "ten"},
    {"size_greater_than": "-1"}, {"size_less_than": "1e3"}, {"added_since": "yesterday"},
    {"modified_since": "2026-13-01"}, {"mime_type": "png"}, {"mime_type": "*/*"},
    {"cursor": "!!"}, {"cursor": encode_cursor("size", (3, "a"))}, {"colour": "red"},
    {"data.": "x"}, {"data.a.b": "x"}, {"data.$where": "x"},
])
def test_invalid_parameters(params):
    with pytest.raises(InvalidParameter) as caught:
        parse(**params)
    assert caught.value.meta["parameter"] in params


def test_repeated_parameter_is_invalid():
    with pytest.raises(InvalidParameter):
        parse_list_query({"limit": ["1", "2"]})


@pytest.mark.parametrize(("sort", "value"), [
    ("-added", datetime(2026, 1, 1, 0, 0, 0, 7, tzinfo=UTC)), ("size", 42),
    ("-filename", "ä b.txt"),
])
def test_cursor_round_trip(sort, value):
    cursor = encode_cursor(sort, (value, "f" * 32))
    assert parse(sort=sort, cursor=cursor).after == (value, "f" * 32)


def test_cursor_keeps_time_zone_exact():
    moment = datetime(2026, 1, 1, 5, tzinfo=timezone(timedelta(hours=5)))
    cursor = encode_cursor("added", (moment, "a"))
    assert parse(sort="added", cursor=cursor).after == (moment, "a")


def test_next_url_keeps_parameters_and_replaces_the_cursor():
    args = {"sort": ["size"], "filename": ["a b"], "cursor": ["old"]}
    url = next_url("/api/files", args, "size", (5, "id1"))
    parsed = urlparse(url)
    assert parsed.path == "/api/files"
    query = parse_qs(parsed.query)
    assert query["sort"] == ["size"]
    assert query["filename"] == ["a b"]
    assert parse(sort="size", cursor=query["cursor"][0]).after == (5, "id1")


@pytest.mark.parametrize("state", ["pending", "done", "failed", "none"])
def test_processing_is_one_of_the_states(state):
    assert parse(processing=state) == ListQuery(processing=state)


@pytest.mark.parametrize(("value", "wanted"), [("true", True), ("false", False)])
def test_has_derivative_images_is_a_boolean(value, wanted):
    assert parse(has_derivative_images=value) == ListQuery(has_derivative_images=wanted)


@pytest.mark.parametrize("params", [
    {"processing": "Pending"}, {"processing": ""}, {"processing": "running"},
    {"has_derivative_images": "1"}, {"has_derivative_images": "True"},
    {"has_derivative_images": "yes"}, {"has_derivative_images": ""},
])
def test_invalid_media_filters_name_their_parameter(params):
    with pytest.raises(InvalidParameter) as caught:
        parse(**params)
    assert caught.value.meta["parameter"] == next(iter(params))


def test_media_filters_combine_with_the_others_and_a_cursor():
    query = parse(processing="done", has_derivative_images="false", mime_type="image/*",
                  sort="size", cursor=encode_cursor("size", (5, "f" * 32)))
    assert query == ListQuery(processing="done", has_derivative_images=False,
                              mime_type="image/*", sort="size", after=(5, "f" * 32))


def test_next_url_keeps_the_media_filters():
    args = {"processing": ["failed"], "has_derivative_images": ["true"], "cursor": ["old"]}
    moment = datetime(2026, 11, 22, 10, tzinfo=UTC)
    query = parse_qs(urlparse(next_url("/api/files", args, "-added", (moment, "id1"))).query)
    assert query["processing"] == ["failed"]
    assert query["has_derivative_images"] == ["true"]
    followed = parse_list_query({k: v for k, v in query.items()})
    assert (followed.processing, followed.has_derivative_images) == ("failed", True)
    assert followed.after == (moment, "id1")
