"""Masking of volatile tokens: dates, clocks, "5 хвилин тому", counters, temperatures, rates, tokens.

Two layers are produced from one text: ``mask_volatile`` replaces everything that changes without
anyone editing the page except dates and times (so a bare "last updated" bump stays visible), and
``mask_all`` also replaces dates and times. Comparing the layers tells a date-only bump from a real edit.
"""

from __future__ import annotations

import re


def trie(words: list[str]) -> str:
    """A regex alternation of plain words as a prefix tree: a mismatch fails at its first letter, which keeps
    long word lists fast (Python's re tries every branch of a flat alternation at every position)."""
    tree: dict[str, dict] = {}  # type: ignore[type-arg]
    for word in words:
        node = tree
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:  # type: ignore[type-arg]
        optional = "" in node
        branches = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if optional:
            body = f"(?:{body})?" if len(branches) == 1 and len(body) > 1 else body + "?"
        return body

    return "(?:" + emit(tree) + ")"


MONTH_WORDS = """
січень січня лютий лютого березень березня квітень квітня травень травня червень червня липень липня серпень
серпня вересень вересня жовтень жовтня листопад листопада грудень грудня січ лют бер квіт трав черв лип серп
вер жовт лист груд январь января февраль февраля март марта апрель апреля май мая июнь июня июль июля август
августа сентябрь сентября октябрь октября ноябрь ноября декабрь декабря янв фев мар апр июн июл авг сен сент
окт ноя дек january february march april may june july august september october november december jan feb mar
apr jun jul aug sep sept oct nov dec
""".split()
WEEKDAY_WORDS = """
понеділок понеділка вівторок вівторка середа середи четвер четверга пʼятниця пʼятниці субота суботи неділя
неділі понедельник понедельника вторник вторника среда среды четверг четверга пятница пятницы суббота субботы
воскресенье monday tuesday wednesday thursday friday saturday sunday mon tue wed thu fri sat sun сьогодні вчора
позавчора сегодня вчера позавчера today yesterday щойно
""".split()
MONTHS = trie(MONTH_WORDS)
WEEKDAYS = trie(WEEKDAY_WORDS)
_YEAR_SUFFIX = r"(?:\s*(?:р\.|року|рік|г\.|года|год))?"
# Dates written with digits (every form has at least one digit: the regex only runs on text with digits).
# Each form starts at a word boundary, with a digit or with a month: the boundary is tested once, and a
# position that starts with neither fails at once (the plain alternation is in tests/test_mask.py).
DATE = re.compile(
    r"\b(?:(?=\d)(?:"
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"  # ISO
    r"|\d{4}/\d{1,2}/\d{1,2}\b"
    r"|\d{1,2}[./-]\d{1,2}[./-](?:\d{4}|\d{2})\b" + _YEAR_SUFFIX +  # 30.11.2026, 30/11/26
    # 30 листопада 2026
    rf"|\d{{1,2}}(?:-?(?:го|е|st|nd|rd|th))?\s+(?i:{MONTHS})\b\.?(?:,?\s+\d{{4}}\b{_YEAR_SUFFIX})?)"
    rf"|(?i:(?:{MONTHS})\b)\.?\s+\d{{1,2}}(?:st|nd|rd|th)?\b(?:,?\s+\d{{4}}\b)?"  # November 30, 2026
    rf"|(?i:(?:{MONTHS})\b)\.?\s+\d{{4}}\b"  # листопад 2026
    r")"
)
# Dates written in words only: weekdays and "today"/"yesterday".
DATE_WORDS = re.compile(rf"(?i:\b{WEEKDAYS}\b,?|\b(?:только что|just now)\b)")
TIME = re.compile(r"(?<![\d:])(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?(?:\s*(?:AM|PM|am|pm))?(?![\d:])"
                  r"|\b(?:о|об|з|до|в|с|по|at)\s+(?:[01]?\d|2[0-3])\.[0-5]\d\b"  # "о 10.00", not a price
                  r"|\b(?:[01]?\d|2[0-3])\s*(?:год\.?|h)\s*[0-5]\d\s*(?:хв\.?|min)")
# Live stamps count seconds to weeks; "18 months ago" in running text is content, not a clock.
_UNITS = ("секунд[уи]?|сек\\.?|хвилин[уи]?|хв\\.?|годин[уи]?|год\\.?|дн(?:і|ів|я|ей)|день|тижн(?:і|ів|ень)|"
          "минут[уы]?|мин\\.?|час(?:а|ов)?|недел[ьи]|"
          "seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?")
AGO = re.compile(rf"\b(?:\d+|одну|одна|один|a|an)\s+(?:{_UNITS})\s+(?:тому|назад|ago)\b", re.IGNORECASE)
COUNTER_WORD_LIST = """
переглядів переглядiв перегляди перегляд переглянуто відвідувачів відвідувань відвідувачі просмотров просмотры
просмотр посетителей views visitors visits hits коментарі коментарів комментарии комментариев comments likes
вподобань
""".split()
COUNTER_WORDS = trie(COUNTER_WORD_LIST)
_COUNT_GAP = r"онлайн|online|за сьогодні|сьогодні|сегодня|за день|today|всього|всего|total|усього"
_COUNT_PREFIX = r"(?:(?i:кількість|количество|число)\s+)?"
COUNTER = re.compile(  # "Переглядів: 1 234", "Відвідувачів онлайн: 12", "1 234 переглядів"
    rf"{_COUNT_PREFIX}(?i:\b{COUNTER_WORDS}\b)(?:\s+(?i:{_COUNT_GAP}))?\s*[:\-–]?\s*\d(?:[\d\s\u00a0,.]*\d)?"
    rf"|\b\d[\d\s\u00a0,.]{{0,40}}\s(?i:{COUNTER_WORDS}\b)"
)
# Bounds in these patterns are there for hostile text, not for taste: a number before a counter word is at
# most 40 characters, and a token's first digit and letter come within its first 128. Unbounded, a block of
# "1 1 1 … переглядів" or "a/a/a/…" made each of its thousands of starting points scan to the end of the
# run: quadratic time, minutes for one 200 KB block (tests/test_mask.py).
# A weather widget signs its temperature ("+5°C"); "ab 60°C" in running text is content. Short blocks
# (a widget's own line) mask unsigned temperatures too.
TEMPERATURE = re.compile(r"(?<![\w.,])[+\-−]\d{1,2}(?:[.,]\d)?\s*°\s*[CСF]?")
TEMPERATURE_ANY = re.compile(r"(?<![\w.,])[+\-−]?\d{1,2}(?:[.,]\d)?\s*°\s*[CСF]?")
SHORT_BLOCK = 80
RATE_CURRENCIES = ("USD", "EUR", "PLN", "GBP", "CHF", "RUB", "CNY")
RATE_WORDS = ("курс", "rate")
RATE = re.compile(rf"\b(?:{'|'.join(RATE_CURRENCIES)})\b\s*(?:/\s*UAH)?\s*[:=]?\s*\d+[.,]\d{{2,4}}"
                  r"(?:\s*/\s*\d+[.,]\d{2,4})?"
                  rf"|\b(?:{'|'.join(RATE_WORDS)})\b[^.\n]{{0,20}}?\d+[.,]\d{{2,4}}", re.IGNORECASE)
# Random tokens: long hex, or long runs of letters and digits without the hyphens of a readable slug.
# (Both need sixteen such characters at the start: checked once, so that a word start fails fast.)
TOKEN = re.compile(r"\b(?=[A-Za-z0-9_+/=]{16})(?:(?=[A-Za-z0-9_+/=]{0,127}\d)(?=[A-Za-z0-9_+/=]{0,127}[A-Za-z])"
                   r"[A-Za-z0-9_+/=]{24,}|[0-9a-fA-F]{16,}\b)")

_HAS_DIGIT = re.compile(r"\d").search
_AGO_WORDS = ("тому", "назад", "ago")

# Fast paths. Python's re tries every branch of these patterns at every position of the text (they start
# with \b, so it cannot skip ahead to a likely first character), and most blocks hold none of them. Each
# pattern needs a cheap witness to match at all: a whole word from its word list (every listed word is
# matched between word boundaries, so it is one of the text's words), or a digit, separator, digit
# sequence. Without the witness the pattern cannot match and is not run: the output is exactly the
# same (tests/test_mask.py checks it against the plain patterns).
_WORDS = re.compile(r"\w+").findall
MONTH_SET = frozenset(MONTH_WORDS)
WEEKDAY_SET = frozenset(WEEKDAY_WORDS)
COUNTER_SET = frozenset(COUNTER_WORD_LIST)
RATE_SET = frozenset(w.lower() for w in (*RATE_CURRENCIES, *RATE_WORDS))
_NUMERIC_DATE = re.compile(r"\d[./-]\d").search  # every digits-only date form holds one
_CLOCK = re.compile(r"\d[:.]\d").search  # "10:30", "о 10.30"; "10 год 30 хв" holds "хв" or "min"
# In folded text, each word and phrase of DATE_WORDS as a bare substring (a cheap search, not a word split).
_WEEKDAY_HINT = re.compile(trie(sorted({*WEEKDAY_WORDS, "только что", "just now"}))).search


# Letters that re's IGNORECASE equates with a letter of the word lists though str.lower() does not (Turkish
# dotted and dotless i, the long s, the old Cyrillic letter forms): folded first, so that no witness is missed.
CASE_FOLDS = str.maketrans("\u0130\u0131\u017f\u1c80\u1c81\u1c82\u1c83\u1c84\u1c85\u1c86\u1c87\u1c88",
                           "iisвдосттъѣꙋ")
_CASE_ODD = re.compile("[" + "".join(map(chr, CASE_FOLDS)) + "]").search


def fold(text: str) -> str:
    """Lower case as IGNORECASE sees it: a word that a case-insensitive pattern matches is in the folded text."""
    if text.isascii():
        return text.lower()
    return (text.translate(CASE_FOLDS) if _CASE_ODD(text) else text).lower()


def _words(text: str) -> set[str]:
    return set(_WORDS(fold(text)))


def mask_volatile(text: str) -> str:
    """Mask what changes by itself (counters, clocks ago, temperatures, rates, tokens); keep dates."""
    low = fold(text)
    if any(w in low for w in _AGO_WORDS):
        text, n = AGO.subn("⟨ago⟩", text)
        if n:
            low = fold(text)
    if not _HAS_DIGIT(text):
        return text
    if len(text) >= 16:
        text, n = TOKEN.subn("⟨token⟩", text)
        if n:
            low = fold(text)
    words = set(_WORDS(low))
    changed = 0
    if not COUNTER_SET.isdisjoint(words):
        text, changed = COUNTER.subn("⟨count⟩", text)
    if "°" in text:
        text, n = (TEMPERATURE_ANY if len(text) <= SHORT_BLOCK else TEMPERATURE).subn("⟨temp⟩", text)
        changed += n
    if changed:  # a replacement can leave a new word behind ("5usd" -> "⟨count⟩usd")
        words = _words(text)
    if not RATE_SET.isdisjoint(words):
        text = RATE.sub("⟨rate⟩", text)
    return text


def mask_dates(text: str) -> str:
    """Mask dates and times (applied after mask_volatile)."""
    low = fold(text)
    if _HAS_DIGIT(text):
        words = set(_WORDS(low))
        changed = 0
        if _NUMERIC_DATE(text) or not MONTH_SET.isdisjoint(words):
            text, changed = DATE.subn("⟨date⟩", text)
        if _CLOCK(text) or "хв" in text or "min" in text:
            text, n = TIME.subn("⟨time⟩", text)
            changed += n
        if changed:
            low = fold(text)
            words = set(_WORDS(low))
    elif _WEEKDAY_HINT(low):
        words = set(_WORDS(low))
    else:  # most blocks: no digit, no weekday
        return text
    if WEEKDAY_SET.isdisjoint(words) and "только что" not in low and "just now" not in low:
        return text
    return DATE_WORDS.sub("⟨date⟩", text)


def mask_all(text: str) -> str:
    return mask_dates(mask_volatile(text))
