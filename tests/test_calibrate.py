"""Learning a page's own noise (pure): what differs between two captures seconds apart, what changes at nearly
every version; the rules listed, confirmed and dropped by `monitor noise`."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from monitor.calibrate import learn_from_history, learn_from_pair, learn_from_siblings
from monitor.cli import main
from monitor.compare import read_bytes as read
from monitor.store import Store
from tests.conftest import catalogue_toml
from tests.helpers import Clock, catalogue, html

QUOTES = ["Хто рано встає, тому Бог дає", "Без праці нема колача", "Терпи, козаче, отаманом будеш"]


def page_with_quote(quote: str, news: tuple[str, ...] = ("Засідання виконкому", "Ремонт доріг")) -> bytes:
    return html(*news, extra=f"<div class='tip'><p>Мудрість дня: {quote}</p></div>")


def test_learn_from_pair_marks_only_what_differs() -> None:
    a = read(page_with_quote(QUOTES[0])).content
    b = read(page_with_quote(QUOTES[1])).content
    (learned,) = learn_from_pair(a, b, when="2026-11-30T10:00:00+00:00")
    assert learned.path.endswith("div.tip/p")
    assert QUOTES[0] in learned.evidence and QUOTES[1] in learned.evidence
    assert learn_from_pair(a, a) == []


def test_a_page_that_changed_wholesale_teaches_nothing() -> None:
    a = read(html("Перша", "Друга", "Третя")).content
    b = read(html("Четверта", "Пʼята", "Шоста")).content
    assert learn_from_pair(a, b) == []


def page_with_stamp(day: int, news: tuple[str, ...] = ("Засідання виконкому", "Ремонт доріг")) -> bytes:
    """A page whose cache stamp moves at every version: a change the detector classes as a date bump."""
    return html(*news, extra=f"<div class='tip'><p>Згенеровано: {day:02}.11.2026 03:00</p></div>")


def test_learn_from_history_needs_a_still_page_around_a_busy_block() -> None:
    versions = [read(page_with_stamp(i + 1)).content for i in range(7)]
    (learned,) = learn_from_history(versions)
    assert learned.path.endswith("div.tip/p") and "6 of the last 6" in learned.evidence
    assert learn_from_history(versions[:4]) == []  # too little history


def test_history_never_learns_a_block_from_real_updates() -> None:
    """A news list whose newest item changes at every version, a table whose figures are updated, a quote
    edited each day: the detector calls each of those transitions a real update, so none is evidence of noise
    (issue 13: history learning had masked a news list's items after a few real updates)."""
    news = [read(html(f"Новина {i}: засідання виконавчого комітету", "Ремонт доріг")).content for i in range(8)]
    assert learn_from_history(news) == []
    quotes = [read(page_with_quote(f"цитата номер {i}")).content for i in range(8)]
    assert learn_from_history(quotes) == []
    table = [read(html("Звіт", extra=f"<table><tr><td>Видатки на освіту</td><td>{1000 + i * 37}</td></tr>"
                                      "</table>")).content for i in range(8)]
    assert learn_from_history(table) == []


def test_noise_command_lists_confirms_and_drops(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    cat_path = tmp_path / "t.toml"
    cat_path.write_text(catalogue_toml(["https://city.example/uk"], db=f"sqlite:///{db}"), encoding="utf-8")
    store = Store.open(f"sqlite:///{db}")
    ids = store.catalogue.sync_catalogue(catalogue(cat_path.read_text()), Clock().now())
    store.noise.add_noise_rules(ids["portal#1"], [("body/main/div.tip/p", "calibration: 'a' -> 'b'")],
                                source="calibration", now=Clock().now())
    store.close()
    runner = CliRunner()
    out = runner.invoke(main, ["-t", str(cat_path), "noise", "portal", "--json"])
    (rule,) = __import__("json").loads(out.stdout)
    assert rule["status"] == "active" and rule["evidence"] == "calibration: 'a' -> 'b'"
    out = runner.invoke(main, ["-t", str(cat_path), "noise", "portal", "--drop", str(rule["id"])])
    assert out.exit_code == 0 and "dropped" in out.stdout
    out = runner.invoke(main, ["-t", str(cat_path), "noise", "portal", "--confirm", "999"])
    assert out.exit_code == 2 and "rule 999 is not a rule of portal" in out.stderr
    store = Store.open(f"sqlite:///{db}")
    assert store.noise.noise_paths(ids.values()) == {}  # dropped rules are not applied...
    assert store.noise.add_noise_rules(ids["portal#1"], [("body/main/div.tip/p", "again")], source="calibration",
                                       now=Clock().now()) == []  # ...and never learned again
    store.close()


def page_of_site(own: str, latest: tuple[str, ...] = ("Відключення води на вул. Шмідта 2 грудня",
                                                      "Сесія міської ради скликається 5 грудня")) -> bytes:
    """A city council page: its own text in <main>, and the site's "latest news" box under every page (a plain
    div after the main content: no tag or class says it is chrome)."""
    items = "".join(f"<li><a href='/uk/news/{i}'>{t}</a></li>" for i, t in enumerate(latest))
    return (f"<html><body><main><h1>{own}</h1><p>{own}: порядок звернення, перелік документів і строки розгляду"
            f" заяви мешканця.</p></main><div class='bottom'><h3>Останні новини</h3><ul>{items}</ul></div>"
            "</body></html>").encode()


def test_blocks_the_site_repeats_on_its_other_pages_are_its_template() -> None:
    """Chrome decided by evidence: the "latest news" box is on every monitored page of the host, so it is the
    site's template; the page's own text is not learned, and two addresses of one page teach nothing."""
    page = read(page_of_site("Субсидії")).content
    siblings = [read(page_of_site(own)).content for own in ("Пільги", "Довідки", "Реєстрація місця проживання")]
    learned = learn_from_siblings(page, siblings, when="2026-11-30T10:00:00+00:00")
    assert [x.path for x in learned] == ["body/div.bottom/ul/li"] and "Відключення води" in learned[0].evidence
    assert learn_from_siblings(page, siblings[:1]) == []  # one other page is no evidence of a template
    assert learn_from_siblings(page, [page, page]) == []  # the same page twice is not a template
    fresher = read(page_of_site("Субсидії", ("Прийом заяв на оздоровлення дітей", "Сесія міської ради "
                                                                                  "скликається 5 грудня"))).content
    assert learn_from_siblings(fresher, siblings) == []  # the box differs: nothing proven yet


def test_an_updated_stamp_alike_on_pages_updated_the_same_day_is_not_the_template() -> None:
    """Every page of a council's site says "Оновлено: 01.03.2026" after a day of updates: a coincidence of
    dates, and each page's own signal of a date-only change, never its template (the quarter's date bump was
    lost when it was)."""
    def stamped(own: str) -> bytes:
        return page_of_site(own).replace(b"</h1>", "</h1><div class='meta'>Оновлено: 01.03.2026</div>".encode(), 1)

    page = read(stamped("Субсидії")).content
    siblings = [read(stamped(own)).content for own in ("Пільги", "Довідки", "Реєстрація місця проживання")]
    assert any(b.text == "Оновлено: 01.03.2026" for b in page.blocks)
    learned = learn_from_siblings(page, siblings)
    assert [x.path for x in learned] == ["body/div.bottom/ul/li"]  # the news box still is
