"""Body limits (api.limits) and request parameters (api.params) on their own.

The depth scan is compared with the depth of the parsed document, walked plainly here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from api.errors import ApiError
from api.limits import MAX_JSON_DEPTH, check_depth, install_limits, json_depth
from api.params import MAX_ID, cell_param, id_param


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


documents = st.recursive(
    st.one_of(st.none(), st.integers(), st.text(alphabet="[]{}\"\\ab,:", max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(alphabet="[]{}\"\\k", max_size=4), inner,
                                            max_size=3)), max_leaves=20)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(documents, st.booleans())
def test_the_depth_scan_equals_the_parsed_depth(document: Any, as_bytes: bool) -> None:
    text = json.dumps(document, ensure_ascii=False)
    assert json_depth(text.encode() if as_bytes else text) == depth(document)


def test_deep_bodies_are_a_400_and_large_ones_a_413() -> None:
    app = Flask(__name__)
    install_limits(app)

    @app.post("/echo")
    def echo() -> Any:
        return {"depth": depth(app.json.loads(app.json.dumps(
            __import__("flask").request.get_json())))}

    client = app.test_client()
    ok = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert client.post("/echo", data=ok, content_type="application/json").get_json() == \
        {"depth": MAX_JSON_DEPTH}
    for body in ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), "[" * 100_000):
        assert client.post("/echo", data=body, content_type="application/json").status_code == 400
    big = "[" + "1," * (app.config["MAX_CONTENT_LENGTH"] // 2) + "1]"
    assert client.post("/echo", data=big, content_type="application/json").status_code == 413
    with pytest.raises(ValueError, match="nested 65 levels"):
        check_depth("[" * 65 + "]" * 65)


@pytest.mark.parametrize("text", ["-1", "ffffffffffffffffffff", "0x8a2a1072b59ffff", " 8a2a1072b59ffff",
                                  "8a2a_1072b59ffff", "", "8a2a1072b59fffg", "ffffffffffffffff"])
def test_cell_ids_that_are_not_cells_are_a_400_naming_the_parameter(text: str) -> None:
    with pytest.raises(ApiError) as refused:
        cell_param(text, "cell")
    assert (refused.value.status, refused.value.detail["parameter"]) == (400, "cell")


def test_cells_outside_the_served_resolutions_are_refused() -> None:
    import h3

    for res in range(16):
        cell = h3.latlng_to_cell(30.27, 120.15, res)
        if res in (6, 8, 11):
            assert cell_param(cell, "cell_id", (6, 8, 11)) == h3.str_to_int(cell)
        else:
            with pytest.raises(ApiError) as refused:
                cell_param(cell, "cell_id", (6, 8, 11))
            assert refused.value.detail["valid_resolutions"] == [6, 8, 11]


def test_ids_stay_within_bigint() -> None:
    assert id_param(MAX_ID, "event_id") == 2**63 - 1
    for value in (0, -1, 2**63, 10**5000):
        with pytest.raises(ApiError) as refused:
            id_param(value, "event_id")
        assert refused.value.detail["parameter"] == "event_id"
