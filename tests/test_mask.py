"""The masks' fast paths skip a pattern when its witness is missing: the output must be exactly what the
plain patterns give, on any text."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import mask as m
from tests.helpers import run_bounded


def plain_volatile(text: str) -> str:
    """mask_volatile without the word witnesses: every pattern runs."""
    text = m.AGO.sub("⟨ago⟩", text)
    if not m._HAS_DIGIT(text):
        return text
    text = m.TOKEN.sub("⟨token⟩", text)
    text = m.COUNTER.sub("⟨count⟩", text)
    if "°" in text:
        text = (m.TEMPERATURE_ANY if len(text) <= m.SHORT_BLOCK else m.TEMPERATURE).sub("⟨temp⟩", text)
    return m.RATE.sub("⟨rate⟩", text)


# The date and token patterns as plain alternations, each form with its own word boundary: the module's
# factored patterns must match exactly the same.
PLAIN_DATE = re.compile(
    r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"
    r"|\b\d{4}/\d{1,2}/\d{1,2}\b"
    r"|\b\d{1,2}[./-]\d{1,2}[./-](?:\d{4}|\d{2})\b" + m._YEAR_SUFFIX +
    rf"|\b\d{{1,2}}(?:-?(?:го|е|st|nd|rd|th))?\s+(?i:{m.MONTHS})\b\.?(?:,?\s+\d{{4}}\b{m._YEAR_SUFFIX})?"
    rf"|(?i:\b(?:{m.MONTHS})\b)\.?\s+\d{{1,2}}(?:st|nd|rd|th)?\b(?:,?\s+\d{{4}}\b)?"
    rf"|(?i:\b(?:{m.MONTHS})\b)\.?\s+\d{{4}}\b")
PLAIN_TOKEN = re.compile(r"\b(?=[A-Za-z0-9_+/=]{0,127}\d)(?=[A-Za-z0-9_+/=]{0,127}[A-Za-z])[A-Za-z0-9_+/=]{24,}"
                         r"|\b[0-9a-fA-F]{16,}\b")


def plain_dates(text: str) -> str:
    return m.DATE_WORDS.sub("⟨date⟩", m.TIME.sub("⟨time⟩", m.DATE.sub("⟨date⟩", text)))


VOCABULARY = [
    *m.MONTH_WORDS, *m.WEEKDAY_WORDS, *m.COUNTER_WORD_LIST, *m.RATE_SET, "только что", "just now", "тому", "назад",
    "ago", "41,25", "UAH",
    "хвилин", "хв", "min", "год", "h", "року", "р.", "о", "at", "°", "°C", "+", "-", ".", ",", ":", "/", "USD", "курс",
    "Переглядів:", "1 234", "2026", "30", "9", "10:30", "10.30", "30.11.2026", "2026-11-30T10:00Z", "0xdeadbeef",
    "a1b2c3d4e5f6a7b8c9d0e1f2a3b4", "deadbeefcafebabe", "QmFzZTY0dG9rZW4rL3dpdGg9cGFk1=", "2026-11-30",
    "новини", "рішення", "сесії", "APRİL", "ſep", "ᲀівторок", "ıanuary", "İ", "ı",
]
_SPACES = st.sampled_from(["", " ", "  ", ", ", "\u00a0", "-"])
_WORD = st.sampled_from(VOCABULARY).flatmap(lambda w: st.sampled_from([w, w.upper(), w.title()]))
TEXTS = st.lists(st.tuples(_WORD, _SPACES), max_size=14).map(lambda parts: "".join(w + s for w, s in parts))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
def test_fast_paths_give_exactly_the_plain_patterns_output(text: str) -> None:
    assert m.mask_volatile(text) == plain_volatile(text)
    masked = m.mask_volatile(text)
    assert m.mask_dates(masked) == plain_dates(masked)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
def test_factored_patterns_match_as_the_plain_alternations(text: str) -> None:
    assert m.DATE.sub("⟨date⟩", text) == PLAIN_DATE.sub("⟨date⟩", text)
    assert m.TOKEN.sub("⟨token⟩", text) == PLAIN_TOKEN.sub("⟨token⟩", text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_fast_paths_on_any_text(text: str) -> None:
    assert m.DATE.sub("⟨date⟩", text) == PLAIN_DATE.sub("⟨date⟩", text)
    assert m.TOKEN.sub("⟨token⟩", text) == PLAIN_TOKEN.sub("⟨token⟩", text)
    assert m.mask_volatile(text) == plain_volatile(text)
    assert m.mask_dates(text) == plain_dates(text)


def test_every_listed_word_in_every_case_around_numbers() -> None:
    """Each word of the lists in the places its pattern wants it: no witness may be missing from a set."""
    for word in [*m.MONTH_WORDS, *m.WEEKDAY_WORDS, *m.COUNTER_WORD_LIST, *m.RATE_SET, "только что", "just now"]:
        for form in (word, word.upper(), word.title()):
            for text in (f"{form} 30", f"{form}. 5, 2026", f"30 {form} 2026 р.", f"30-го {form}", f"{form}, 10:30",
                         f"Всього {form}: 1 234", f"12 {form}", f"({form})", f"1{form} 2", f"{form}/UAH: 41,25",
                         f"{form} сьогодні 10.30", f"Переглядів: 5{form} 10.30"):
                assert m.mask_volatile(text) == plain_volatile(text), text
                assert m.mask_dates(text) == plain_dates(text), text


def test_time_ago_in_every_case() -> None:
    for word in m._AGO_WORDS:
        for form in (word, word.upper(), word.title(), word.replace("о", "\u1c82")):
            for text in (f"5 хвилин {form}", f"2 MINUTES {form}", f"одну годину {form}, 30.11.2026"):
                assert m.mask_volatile(text) == plain_volatile(text), text
    assert m.mask_volatile("Оновлено 5 ХВИЛИН ТОМУ") == "Оновлено ⟨ago⟩"


def test_the_case_folds_cover_every_letter_ignorecase_equates() -> None:
    """A future Unicode may add case equivalents: every character that IGNORECASE matches with a letter of the
    word lists must lower to that letter or be in the fold table, else a witness could be missed."""
    letters = set("".join([*m.MONTH_WORDS, *m.WEEKDAY_WORDS, *m.COUNTER_WORD_LIST, *m.RATE_SET, "только что",
                           "just now"]))
    letters.discard(" ")
    any_letter = re.compile("[" + re.escape("".join(sorted(letters))) + "]", re.IGNORECASE)
    every_char = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    odd = {c for c in any_letter.findall(every_char) if c.lower() not in letters}
    assert odd, "the scan found nothing: the check itself is broken"
    assert all(c.translate(m.CASE_FOLDS).lower() in letters for c in odd), sorted(odd)


def test_masks_in_any_case() -> None:
    assert m.mask_all("ПОНЕДІЛОК, 30 ЛИСТОПАДА 2026 р. о 10:30") == "⟨date⟩ ⟨date⟩ о ⟨time⟩"
    assert m.mask_all("Переглядів: 1 234 · Updated just now") == "⟨count⟩ · Updated ⟨date⟩"
    assert m.mask_all("APRİL 5, 2026") == "⟨date⟩"
    assert m.mask_all("Usd 41,25 · Курс EUR: 44,10") == "⟨rate⟩ · ⟨rate⟩"
    assert m.mask_all("Рішення сесії № 12") == "Рішення сесії № 12"


HOSTILE = """
import json, sys, time
from monitor.mask import mask_all
out = {}
for text in ["1 " * 100_000 + "x переглядів", "1 " + "a/" * 70_000, "1 " + "a+" * 100_000,
             "переглядів " + "1 " * 100_000 + "x", "курс " + "1 " * 100_000, "1." * 100_000,
             "30.11.2026 " * 20_000, "+1 " * 70_000 + "°", "5 " * 100_000 + "хвилин тому"]:
    started = time.perf_counter()
    mask_all(text)
    out[text[:16]] = time.perf_counter() - started
print(json.dumps(out))
"""


def test_hostile_blocks_are_masked_in_linear_time() -> None:
    """Blocks built to make a backtracking pattern rescan the rest of the text from each of its thousands
    of starting points. Quadratic, each of these took minutes; linear, all of them take well under a second.
    The bounds are loose on purpose: this proves a page cannot stall the monitor, it does not measure speed
    (in a child process, so that a regression fails at the timeout instead of hanging the suite)."""
    times = run_bounded(HOSTILE, 60, "masking the hostile blocks (a pattern backtracks)")
    assert len(times) == 9 and all(t < 10 for t in times.values()), times
    assert m.mask_all("1 234 567 переглядів") == "⟨count⟩"  # the bounds keep what counters look like
    token = "x7" + "Ab" * 60  # a 122-character token: still one token
    assert m.mask_volatile(f"csrf {token} 1") == "csrf ⟨token⟩ 1"
