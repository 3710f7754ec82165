"""Masking of volatile tokens: dates, clocks, "5 хвилин тому", counters, temperatures, rates, tokens.

Two layers are produced from one text: ``mask_volatile`` replaces everything that changes without
anyone editing the page except dates and times (so a bare "last updated" bump stays visible), and
``mask_all`` also replaces dates and times. Comparing the layers tells a date-only bump from a real edit.
"""

from __future__ import annotations

import re

_UK_MONTHS = ("січ(?:ня|ень)?|лют(?:ого|ий)?|берез(?:ня|ень)|бер|квіт(?:ня|ень)?|трав(?:ня|ень)?|"
              "черв(?:ня|ень)?|лип(?:ня|ень)?|серп(?:ня|ень)?|верес(?:ня|ень)|вер|жовт(?:ня|ень)?|"
              "листопад(?:а)?|лист|груд(?:ня|ень)?")
_RU_MONTHS = ("январ[ья]|янв|феврал[ья]|фев|марта?|мар|апрел[ья]|апр|ма[яй]|июн[ья]|июн|июл[ья]|июл|"
              "августа?|авг|сентябр[ья]|сен|октябр[ья]|окт|ноябр[ья]|ноя|декабр[ья]|дек")
_EN_MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|December|"
              "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec")
MONTHS = f"(?:{_UK_MONTHS}|{_RU_MONTHS}|{_EN_MONTHS})"
WEEKDAYS = ("понеділ(?:ок|ка)|вівтор(?:ок|ка)|серед[аи]|четвер(?:га)?|пʼятниц[яі]|субот[аи]|неділ[яі]|"
            "понедельник|вторник|сред[аы]|четверг|пятниц[аы]|суббот[аы]|воскресенье|"
            "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|Mon|Tue|Wed|Thu|Fri|Sat|Sun")
RELATIVE_DAYS = "сьогодні|вчора|позавчора|сегодня|вчера|today|yesterday|щойно|только что|just now"

_YEAR_SUFFIX = r"(?:\s*(?:р\.|року|рік|г\.|года|год))?"
DATE = re.compile(
    r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"  # ISO
    r"|\b\d{4}/\d{1,2}/\d{1,2}\b"
    r"|\b\d{1,2}[./-]\d{1,2}[./-](?:\d{4}|\d{2})\b" + _YEAR_SUFFIX +  # 30.11.2026, 30/11/26
    rf"|\b\d{{1,2}}(?:-?(?:го|е|st|nd|rd|th))?\s+(?:{MONTHS})\b\.?(?:,?\s+\d{{4}}\b{_YEAR_SUFFIX})?"  # 30 листопада 2026
    rf"|\b(?:{MONTHS})\b\.?\s+\d{{1,2}}(?:st|nd|rd|th)?\b(?:,?\s+\d{{4}}\b)?"  # November 30, 2026
    rf"|\b(?:{MONTHS})\b\.?\s+\d{{4}}\b"  # листопад 2026
    rf"|\b(?:{WEEKDAYS})\b,?"
    rf"|(?<!\w)(?:{RELATIVE_DAYS})(?!\w)",
    re.IGNORECASE,
)
TIME = re.compile(r"(?<![\d:])(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?(?:\s*(?:AM|PM|am|pm))?(?![\d:])"
                  r"|\b(?:о|об|з|до|в|с|по|at)\s+(?:[01]?\d|2[0-3])\.[0-5]\d\b"  # "о 10.00", not a price
                  r"|\b(?:[01]?\d|2[0-3])\s*(?:год\.?|h)\s*[0-5]\d\s*(?:хв\.?|min)")
_UNITS = ("секунд[уи]?|сек\\.?|хвилин[уи]?|хв\\.?|годин[уи]?|год\\.?|дн(?:і|ів|я|ей)|день|тижн(?:і|ів|ень)|"
          "місяц(?:ь|і|ів)|минут[уы]?|мин\\.?|час(?:а|ов)?|недел[ьи]|месяц(?:а|ев)?|"
          "seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?")
AGO = re.compile(rf"\b(?:\d+|одну|одна|один|a|an)\s+(?:{_UNITS})\s+(?:тому|назад|ago)\b", re.IGNORECASE)
_COUNTER_WORDS = ("переглядів|перегляди|переглядiв|переглянуто|перегляд|відвідувачів|відвідувань|відвідувачі|"
                  "просмотров|просмотры|просмотр|посетителей|"
                  "views?|visitors?|visits|hits|reads|"
                  "коментар(?:і|ів)|комментари(?:и|ев)|comments?|likes?|вподобань")
COUNTER = re.compile(
    rf"\b(?:кількість\s+|количество\s+|число\s+)?(?:{_COUNTER_WORDS})\s*[:\-–]?\s*\d[\d\s\u00a0,.]*\d|"
    rf"\b(?:кількість\s+|количество\s+)?(?:{_COUNTER_WORDS})\s*[:\-–]?\s*\d"
    rf"|\b\d[\d\s\u00a0,.]*\s+(?:{_COUNTER_WORDS})\b",
    re.IGNORECASE,
)
TEMPERATURE = re.compile(r"[+\-−]?\d{1,2}(?:[.,]\d)?\s*°\s*[CСF]?")
RATE = re.compile(r"\b(?:USD|EUR|PLN|GBP|CHF|RUB|CNY)\b\s*(?:/\s*UAH)?\s*[:=]?\s*\d+[.,]\d{2,4}"
                  r"(?:\s*/\s*\d+[.,]\d{2,4})?"
                  r"|\b(?:курс|rate)\b[^.\n]{0,20}?\d+[.,]\d{2,4}", re.IGNORECASE)
TOKEN = re.compile(r"\b(?=[A-Za-z0-9_\-]*\d)(?=[A-Za-z0-9_\-]*[A-Za-z])[A-Za-z0-9_\-]{24,}\b"
                   r"|\b[0-9a-fA-F]{16,}\b")

_VOLATILE = ((TOKEN, "⟨token⟩"), (AGO, "⟨ago⟩"), (COUNTER, "⟨count⟩"), (TEMPERATURE, "⟨temp⟩"),
             (RATE, "⟨rate⟩"))
_DATES = ((DATE, "⟨date⟩"), (TIME, "⟨time⟩"))


def mask_volatile(text: str) -> str:
    """Mask what changes by itself (counters, clocks ago, temperatures, rates, tokens); keep dates."""
    for pattern, placeholder in _VOLATILE:
        if pattern is TEMPERATURE and "°" not in text:
            continue
        text = pattern.sub(placeholder, text)
    return text


def mask_dates(text: str) -> str:
    """Mask dates and times (applied after mask_volatile)."""
    for pattern, placeholder in _DATES:
        text = pattern.sub(placeholder, text)
    return text


def mask_all(text: str) -> str:
    return mask_dates(mask_volatile(text))
