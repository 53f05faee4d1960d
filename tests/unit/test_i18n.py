"""One language helper: every zh/en choice goes through config.i18n."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from config.i18n import MESSAGES, is_chinese, pick, t

ROOT = Path(__file__).resolve().parents[2]
APP_CODE = ["app.py", "geo", "config", "layers", "data", "store", "render", "ops", "services",
            "api", "callbacks"]


@pytest.mark.parametrize(("language", "chinese"), [
    ("zh-CN", True), ("zh", True), ("zh-Hans", True), ("en", False), ("en-GB", False)])
def test_is_chinese_and_pick(language: str, chinese: bool) -> None:
    assert is_chinese(language) is chinese
    assert pick(language, "人口", "People") == ("人口" if chinese else "People")
    assert pick(language, None, 3) == (None if chinese else 3)
    assert t("lang.switch", language) == ("English" if chinese else "中文")


def test_messages_have_both_languages_and_unknown_keys_fall_back() -> None:
    assert all(zh and en for zh, en in MESSAGES.values())
    assert t("no.such.key", "en") == "no.such.key"


def test_no_module_decides_the_language_by_itself() -> None:
    spelled = re.compile(r"""startswith\(\s*["']zh["']\s*\)""")
    offenders = []
    for entry in APP_CODE:
        path = ROOT / entry
        for source in [path] if path.is_file() else sorted(path.rglob("*.py")):
            if source == ROOT / "config" / "i18n.py":
                continue
            for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
                if spelled.search(line):
                    offenders.append(f"{source.relative_to(ROOT)}:{number}")
    assert offenders == [], "use config.i18n.pick / is_chinese"
