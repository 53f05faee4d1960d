"""Data text is always text: the one escape (render.text) against the standard library's."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from render.figures import MapView, points_trace
from render.text import data_text, data_texts

SAMPLES = ['<span style="font-size:120px;color:red">EVACUATE NOW</span>',
           '<a href="https://example.org">x</a>', "R&D <b>", "plain", "&lt;already", "中文 & <i>"]


def test_data_text_matches_html_escape_and_reads_missing_as_empty() -> None:
    for sample in SAMPLES:
        assert data_text(sample) == html.escape(sample, quote=False)
    assert data_text(None) == data_text(float("nan")) == data_text(pd.NA) == ""
    assert data_text(42) == "42"
    column = pd.Series([*SAMPLES, None], dtype=object)
    assert list(data_texts(column)) == [html.escape(s, quote=False) for s in SAMPLES] + [""]


def test_overlay_points_carry_escaped_names_categories_and_ids() -> None:
    rows = pd.DataFrame({"id": ["<id>", "b"], "name": [SAMPLES[0], None],
                         "category": [SAMPLES[1], "kiosk"],
                         "lat": [1.0, 2.0], "lon": [3.0, 4.0]})
    view = MapView(hex_layer="things", metric=None, zoom=15.0, center=(1.0, 3.0))
    trace = points_trace(rows, "things", view, "overlay-things")
    flat = [value for row in trace["customdata"] for value in row]
    assert not any("<" in value or ">" in value for value in flat)
    assert trace["customdata"][0] == [html.escape(v, quote=False) for v in
                                      ("<id>", SAMPLES[0], SAMPLES[1])]
    assert np.array_equal(trace["customdata"][1], ["b", "", "kiosk"])
