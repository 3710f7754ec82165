"""One test per cause of the missed real updates of issue 13, on our own Ukrainian municipal-style pages
(tests/fixtures/issue13/): prose taken for chrome by its class or id words, numbers and dates inside
sentences masked as volatile, text that landed in no block. (History learning: tests/test_calibrate.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.compare import classify_pair, read_bytes
from monitor.domain import ChangeClass, Region
from tests.test_extract_visible import lost_text

FIXTURES = Path(__file__).parent / "fixtures" / "issue13"
URL = "https://pokrovsk-rada.gov.ua/uk/page/cnap"


def _page(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def _classify(name: str, old: str, new: str) -> ChangeClass:
    before = _page(name)
    assert before.count(old) == 1, old
    return classify_pair(before.encode(), before.replace(old, new).encode(), url=URL)


@pytest.mark.parametrize(("old", "new"), [
    ("не пізніше наступного робочого дня", "не пізніше третього робочого дня"),  # <section id="sharing-of-...">
    ("щовівторка та щочетверга", "щосереди та щопʼятниці"),  # <section id="social-..." class="widget-block">
    ("№ 412 від 14.10.2026", "№ 415 від 21.10.2026"),  # <div id="related-regulations">
    ("протягом місяця", "протягом двох тижнів"),  # <div class="comments-policy">
    ("<div class=\"sidebar-layout-content\">\n<h1>", "<div class=\"sidebar-layout-content\">\n<p>Увага! Центр "
     "тимчасово працює за скороченим графіком через відключення електроенергії.</p>\n<h1>"),
], ids=["sharing-section", "social-widget", "related", "comments", "sidebar-wrapper"])
def test_prose_in_sections_named_like_chrome_is_a_real_update(old: str, new: str) -> None:
    """Class and id words are a prior, never the verdict for prose: a regulation page whose sections are
    id'd "sharing-of-documents..." or classed "widget-block" holds content in them."""
    assert _classify("regulation-sections.html", old, new) is ChangeClass.CONTENT


def test_short_chrome_by_class_words_and_declared_chrome_stay_chrome() -> None:
    content = read_bytes(_page("regulation-sections.html").encode(), url=URL).content
    regions = {b.text: b.region for b in content.blocks}
    assert regions["Facebook Telegram"] is Region.CHROME  # share buttons: a few words in a "share" box
    assert regions["© 2026 Покровська міська рада. Усі права захищено."] is Region.CHROME  # <footer>
    assert regions["Рада"] is Region.CHROME  # <nav>


@pytest.mark.parametrize(("old", "new"), [
    ("до 15 грудня 2026 року", "до 20 грудня 2026 року"),
    ("У 2014 році", "У 2017 році"),
    ("16 проєктів", "36 проєктів"),
    ("18.12.2026 о 10:00", "19.12.2026 о 14:00"),
    ("1 200 000 гривень", "1 500 000 гривень"),
    ("<td>22.12.2026</td>", "<td>29.12.2026</td>"),
], ids=["deadline", "year", "figure-in-list", "meeting-date", "amount", "date-in-a-schedule-table"])
def test_numbers_and_dates_inside_sentences_are_content(old: str, new: str) -> None:
    """Masks are for stamps and clocks: a date or a figure in a sentence, a list item or a table cell is data."""
    assert _classify("announcement.html", old, new) is ChangeClass.CONTENT


def test_date_only_means_the_pages_own_stamp_moved() -> None:
    assert _classify("announcement.html", "Оновлено: 28.11.2026 09:12",
                     "Оновлено: 30.11.2026 16:40") is ChangeClass.DATE_ONLY
    page = _page("announcement.html")
    noisy = (page.replace("30 листопада 2026, 14:35", "1 грудня 2026, 09:02").replace("Переглядів: 1234",
                                                                                     "Переглядів: 1391"))
    assert not classify_pair(page.encode(), noisy.encode(), url=URL).is_change  # a clock and a counter: noise
    both = noisy.replace("Оновлено: 28.11.2026 09:12", "Оновлено: 01.12.2026 09:00")
    assert classify_pair(page.encode(), both.encode(), url=URL) is ChangeClass.DATE_ONLY


@pytest.mark.parametrize(("name", "old", "new"), [
    ("outside-main.html", "щопонеділка з 10:00 до 13:00", "щовівторка з 14:00 до 17:00"),
    ("regulation-sections.html", "буде оприлюднено додатково", "оприлюднено на дошці оголошень"),  # <noindex>
], ids=["after-main", "noindex"])
def test_visible_text_outside_the_main_container_reaches_the_fingerprint(name: str, old: str, new: str) -> None:
    assert _classify(name, old, new) is ChangeClass.CONTENT
    assert lost_text(_page(name)) == []


def test_a_sentence_in_a_carousel_is_content_its_caption_is_not() -> None:
    """A widget's class words make its small texts volatile, not its prose."""
    def page(slide: str, caption: str) -> bytes:
        return (f"<html><body><main><h1>Новини</h1><p>Місто отримало кошти на ремонт укриття в ліцеї № 3.</p>"
                f"<div class='slider'><h2>{slide}</h2><span>{caption}</span></div></main></body></html>").encode()

    slide = "Виконком затвердив тарифи на вивезення побутових відходів для населення"
    assert classify_pair(page(slide, "Слайд 1"), page(slide.replace("затвердив", "переглянув"), "Слайд 1"),
                         url=URL) is ChangeClass.CONTENT
    assert not classify_pair(page(slide, "Слайд 1"), page(slide, "Слайд 2"), url=URL).is_change
