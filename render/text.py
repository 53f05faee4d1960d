"""Data text is always text: the one escape for strings that reach an HTML-rendering sink.

Dash components render their text children as text (React escapes them), so a
description or a device name passed as a child is safe as it is. Plotly is the
exception: hover labels, ``text`` and trace names go through its own small HTML
subset (``<b>``, ``<br>``, ``<span style>``, ``<a href>`` …), so a device named
``<span style="font-size:120px">EVACUATE NOW</span>`` would be drawn big. Every data
string put into ``customdata`` shown by a ``hovertemplate``, ``hovertext``, ``text``
or a trace ``name`` goes through :func:`data_text` first; plotly turns the entities
back into the characters, so the hover shows exactly what the data says.

>>> data_text('<a href="x">R&D</a>')
'&lt;a href="x"&gt;R&amp;D&lt;/a&gt;'
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

#: What :func:`html.escape` replaces with ``quote=False``, in that order (``&`` first).
_ENTITIES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))


def data_text(value: Any) -> str:
    """``value`` as text that plotly shows literally: ``&``, ``<`` and ``>`` escaped.

    None (and pandas' missing values, which are not equal to themselves) become "".
    """
    if value is None or (isinstance(value, float) and value != value):
        return ""
    text = str(value)
    if text in ("<NA>", "nan", "NaT") and not isinstance(value, str):
        return ""
    return html.escape(text, quote=False)


def data_texts(values: pd.Series) -> np.ndarray:
    """:func:`data_text` over a column at once (object array; missing values become "").

    The same three replacements, vectorised: overlays draw up to 100,000 points.
    """
    texts = values.astype("string").fillna("")
    for char, entity in _ENTITIES:
        texts = texts.str.replace(char, entity, regex=False)
    return texts.to_numpy(dtype=object)


__all__ = ["data_text", "data_texts"]
