"""The streaming sentence splitter."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core.providers.pipeline._sentences import SentenceSplitter


def split_all(text: str, cuts: list[int] | None = None, **kwargs: int) -> list[str]:
    splitter = SentenceSplitter(**kwargs)
    out: list[str] = []
    last = 0
    for cut in sorted(set(cuts or [])):
        out += splitter.feed(text[last:cut])
        last = cut
    out += splitter.feed(text[last:])
    return out + splitter.flush()


def test_basic_sentences() -> None:
    assert split_all("Hello there! How are you? I am fine.") == [
        "Hello there!",
        "How are you?",
        "I am fine.",
    ]


def test_decimals_urls_and_abbreviations_do_not_split() -> None:
    text = "It costs 3.5 euros at example.com today. Ask Dr. Smith, e.g. on Monday. J. Doe agrees."
    assert split_all(text) == [
        "It costs 3.5 euros at example.com today.",
        "Ask Dr. Smith, e.g. on Monday.",
        "J. Doe agrees.",
    ]


def test_newlines_and_quotes_and_ellipsis() -> None:
    assert split_all('First line\nShe said "stop." Then... silence?! Ok') == [
        "First line",
        'She said "stop."',
        "Then...",
        "silence?!",
        "Ok",
    ]


def test_sentence_is_released_as_soon_as_the_next_character_arrives() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("Sure.") == []  # "Sure.5" would be a number
    assert splitter.feed(" The") == ["Sure."]
    assert splitter.flush() == ["The"]


def test_overlong_sentence_is_cut_at_a_space() -> None:
    text = "word " * 30
    out = split_all(text, max_sentence_chars=50)
    assert all(len(s) <= 50 for s in out)
    assert " ".join(out).split() == text.split()


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="ab .!?\n3,\"')Dr.e.g…", max_size=200),
    cuts=st.lists(st.integers(0, 200), max_size=15),
    limit=st.sampled_from([20, 300]),
)
def test_any_split_gives_the_same_sentences(text: str, cuts: list[int], limit: int) -> None:
    whole = split_all(text, max_sentence_chars=limit)
    assert split_all(text, cuts, max_sentence_chars=limit) == whole
    # nothing is lost or invented, apart from whitespace
    assert "".join(whole).replace(" ", "") == "".join(text.split())
