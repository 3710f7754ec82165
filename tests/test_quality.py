"""The capture-quality gate: what is not the page's content is a bad capture, never a change."""

from __future__ import annotations

import pytest

from monitor.domain import Content, Kind, Quality
from monitor.kinds import extract
from monitor.quality import assess
from tests.helpers import html

URL = "https://pokrovsk-rada.gov.ua/uk/articles/item/4412/remont"


def check(body: bytes, *, final_url: str = URL, previous_size: int | None = None, headers: bool = False) -> Quality:
    content = extract(Kind.HTML, body, url=final_url)
    return assess(content, url=URL, final_url=final_url, body=body, previous_size=previous_size,
                  error_headers=headers)[0]


def test_a_normal_page_passes() -> None:
    assert check(html("Новина")) is Quality.OK


def test_redirect_to_the_home_page() -> None:
    assert check(html("Новина"), final_url="https://pokrovsk-rada.gov.ua/uk") is Quality.HOME_REDIRECT
    assert check(html("Новина"), final_url="https://pokrovsk-rada.gov.ua/uk/articles/item/4412") is Quality.OK


def test_truncated_body_is_caught_only_against_the_previous_size() -> None:
    full = html(*[f"Новина номер {i} про роботу міської ради" for i in range(200)])
    cut = full[: len(full) // 3]
    assert check(cut, previous_size=len(full)) is Quality.TRUNCATED
    assert check(cut) is Quality.OK  # alone, a page without </html> is legal HTML
    assert check(full, previous_size=len(full)) is Quality.OK


def test_bot_protection_header() -> None:
    assert check(html("Новина"), headers=True) is Quality.CHALLENGE


def test_long_page_mentioning_404_is_content() -> None:
    text = " ".join(["Статистика звернень: 404 звернення розглянуто, сторінку не знайдено в архіві."] * 40)
    assert check(html(text)) is Quality.OK


def test_unreadable_content_passes_its_reason_on() -> None:
    content = Content(quality=Quality.UNREADABLE, quality_reason="content selector '#x' matched nothing")
    assert assess(content, url=URL, final_url=URL, body=b"") == (Quality.UNREADABLE,
                                                                  "content selector '#x' matched nothing")


@pytest.mark.parametrize(("title", "text", "expected"), [
    ("Контакти", "Адреса: вул. Садова, 404. Прийом громадян щовівторка.", Quality.OK),  # an address, not an error
    ("Рішення №404", "Рішення виконавчого комітету №404 від 12.03.2021 про благоустрій.", Quality.OK),
    ("404", "На жаль, такої сторінки немає.", Quality.SOFT_404),
    ("Помилка 404", "Повернутися на головну.", Quality.SOFT_404),
    ("Портал", "404 — сторінку не знайдено.", Quality.SOFT_404),
    ("Error 404", "The page you requested is gone.", Quality.SOFT_404),
    ("Портал", "Сторінку не знайдено.", Quality.SOFT_404),
])
def test_a_number_404_in_the_text_is_not_an_error_page(title: str, text: str, expected: Quality) -> None:
    assert check(html(extra=f"<p>{text}</p>", title=title)) is expected
