"""Every message a person reads is an id with parameters, and every id has its words."""

from __future__ import annotations

import re

import pytest

from conftest import REPO
from messages import Message, catalogue, language_of, note, placeholders, render

# `note("id", ...)`, `SomeError("id", ...)`: the ids the code uses (any class called with an id).
USED = re.compile(r"""(?:\bnote|\b[A-Z][A-Za-z]*)\(\s*"([a-z_]+\.[a-z_0-9]+)\"""")
SOURCES = [p for folder in ("i2v", "prompting", "studio", "messages") for p in (REPO / folder).rglob("*.py")]
SOURCES += [REPO / "app.py"]


def used_ids() -> set[str]:
    found = set()
    for path in SOURCES:
        if path.is_file():
            found |= set(USED.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_id_the_code_uses_has_english_words():
    assert used_ids(), "the pattern found no ids: it is out of date"
    missing = used_ids() - set(catalogue("en"))
    assert not missing, f"ids without words in configs/messages/en.toml: {sorted(missing)}"


def test_rendering_fills_parameters_and_nested_messages():
    inner = note("plan.offload", strategy="group")
    outer = note("memory.oom_retried", change=inner)
    assert str(outer) == "out of GPU memory; retried with group offload"
    dumped = outer.model_dump(mode="json")
    assert dumped["text"] == str(outer) and dumped["params"]["change"]["code"] == "plan.offload"
    assert render(Message.model_validate(dumped)) == str(outer)  # read back from stored JSON


def test_language_of():
    assert [language_of(v) for v in ("zh-CN", "zh_TW", "zh", "en-US", "fr", None, "")] == [
        "zh", "zh", "zh", "en", "en", "en", "en"]  # fmt: skip


def test_unknown_id_is_a_developer_error():
    with pytest.raises(KeyError, match="no words for message"):
        str(note("no.such_id"))


def test_placeholders():
    assert placeholders("{a} and {b:.1f} and {c!r}") == {"a", "b", "c"}


def test_every_language_has_every_message_with_the_same_parameters():
    from messages import LANGUAGES

    english = catalogue("en")
    for language in LANGUAGES:
        words = catalogue(language)
        assert set(words) == set(english), (language, set(english) ^ set(words))
        for code, template in english.items():
            assert placeholders(words[code]) == placeholders(template), (language, code)
            render(note(code, **{name: _sample(name) for name in placeholders(template)}), language)  # it formats


def _sample(name: str):
    return 1.0 if name.endswith(("_gb", "_mb", "mb", "seconds", "minutes", "intensity", "eta", "megapixels", "limit",
                                 "value", "duration", "shift")) else "x"  # fmt: skip


def test_nothing_the_page_shows_needs_an_emoji_font():
    # The 🎲 showed as a box where no emoji font is installed.
    import app

    emoji = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF\uFE0F]")
    texts = [t for language in ("en", "zh") for t in catalogue(language).values()]
    texts += [str(v) for table in app.I18N.translations.values() for v in table.values()]
    assert not [t for t in texts if emoji.search(t)]
    assert not emoji.search((REPO / "app.py").read_text(encoding="utf-8"))


def test_every_knob_has_words_in_every_language():
    # A refusal names its knob: a knob without words failed with a KeyError (a 500) instead.
    import tomllib

    from i2v.request import GenerationRequest
    from messages import CATALOGUES, LANGUAGES

    for language in LANGUAGES:
        words = tomllib.loads((CATALOGUES / f"{language}.toml").read_text(encoding="utf-8"))
        assert [knob for knob in GenerationRequest.knobs() if f"knob.{knob}" not in words] == [], language
