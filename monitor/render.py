"""The audit for people: a terminal table, CSV, JSON, XLSX (a sheet saying what was audited, then one sheet per
view, with real dates, filters and frozen headers) and one self-contained HTML file an auditor can open,
print and forward. Page content and form answers are untrusted: the HTML escapes everything, carries no
script and forbids any with its Content-Security-Policy."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, select_autoescape
from markupsafe import Markup, escape

from monitor.audit import ServiceAudit
from monitor.auditing import CODES, LABELS, REJECTED, AuditReport, Code, View, local_time
from monitor.domain import Reason, reasons_text

COLOURS = {"compliant": "#2e7d32", "missed": "#c62828", "unknown": "#757575", "confirmed": "#2e7d32",
           "date_only": "#f9a825", "unconfirmed": "#c62828", "unverifiable": "#757575", "unreported": "#6a1b9a",
           "rejected": "#4e342e"}
SYMBOLS = {"compliant": "✓", "missed": "✗", "unknown": "?", "confirmed": "✓", "date_only": "≈", "unconfirmed": "✗",
           "unverifiable": "?", "unreported": "!", "rejected": "⊘"}
SHARES = {"coverage"}  # columns that are shares of 1 (shown as per cent)


def _label(lang: str, key: str) -> str:
    return LABELS[lang].get(key, key)


def cell_text(value: object, lang: str, tz: str) -> str:
    """A cell as text in the language: codes translated, times in local time, change ids joined."""
    if value is None:
        return ""
    if isinstance(value, Code):
        return CODES[lang].get(value, str(value))
    if isinstance(value, Reason):
        return value.text(lang)
    if isinstance(value, datetime):
        return local_time(value, tz)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return ("; " if value and isinstance(value[0], Reason) else ", ").join(cell_text(v, lang, tz) for v in value)
    return str(value)


def _json_value(value: object, tz: str) -> object:
    if isinstance(value, Reason):
        return {"code": value.code, **dict(value.args), "text": value.text()}
    if isinstance(value, datetime):
        return value.astimezone(ZoneInfo(tz)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_json_value(v, tz) for v in value]
    return value


def to_csv(view: View, lang: str, tz: str) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([_label(lang, c) for c in view.columns])
    for row in view.rows:
        w.writerow([cell_text(v, lang, tz) for v in row])
    return out.getvalue()


def to_json(views: Mapping[str, View], meta: Mapping[str, Any], tz: str) -> str:
    """Machine-readable: the codes as they are (English), times ISO 8601 with their offset, ids as lists."""
    doc = {**meta, **{name: [{c: _json_value(v, tz) for c, v in zip(v_.columns, row, strict=True)}
                             for row in v_.rows] for name, v_ in views.items()}}
    return json.dumps(doc, ensure_ascii=False, indent=2, default=str)


def audit_meta(report: AuditReport) -> dict[str, Any]:
    """What an audit's JSON says of itself: range, filters, when, which tool, from which history."""
    return {"from": report.start.isoformat(), "to": report.end.isoformat(), "timezone": report.tz,
            "generated_at": report.generated.isoformat(), "version": report.version,
            "filters": {"services": list(report.services), "departments": list(report.departments)},
            "catalogue": report.catalogue.source,
            "chain_heads": [{"chain": h.name, "seq": h.seq, "hash": h.hash} for h in report.heads]}


def to_xlsx(views: Mapping[str, View], lang: str, tz: str, about: View | None = None) -> bytes:
    """A workbook: `about` first (what was audited), then a sheet per view. Times and days are real dates in
    local time, shares are per cent, closed-set values are in the language; every sheet has a filter on its
    columns and a frozen header."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    zone = ZoneInfo(tz)
    wb = Workbook()
    wb.remove(wb.active)  # type: ignore[arg-type]
    sheets = {"about": about, **views} if about is not None else dict(views)
    for name, view in sheets.items():
        if view is None:
            continue
        ws = wb.create_sheet(_label(lang, name)[:31])
        ws.append([_label(lang, c) for c in view.columns])
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in view.rows:
            cells: list[object] = []
            for value in row:
                if isinstance(value, datetime):
                    cells.append(value.astimezone(zone).replace(tzinfo=None))
                elif isinstance(value, date) or (isinstance(value, int | float) and not isinstance(value, bool)):
                    cells.append(value)
                else:
                    cells.append(cell_text(value, lang, tz))
            ws.append(cells)
            for cell, column in zip(ws[ws.max_row], view.columns, strict=True):
                if isinstance(cell.value, datetime):
                    cell.number_format = "yyyy-mm-dd hh:mm"
                elif isinstance(cell.value, date):
                    cell.number_format = "yyyy-mm-dd"
                elif column in SHARES and isinstance(cell.value, float):
                    cell.number_format = "0.0%"
        for index, column in enumerate(ws.columns, start=1):
            width = max((len(cell_text(c.value, lang, tz)) for c in column), default=8)
            ws.column_dimensions[get_column_letter(index)].width = min(60, max(10, width + 2))
        ws.freeze_panes = "A2"
        ws.auto_filter.ref = ws.dimensions
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def labelled(view: View, lang: str, tz: str, columns: Sequence[str] | None = None
             ) -> tuple[str, list[str], list[list[str]]]:
    """A view's title, column names and cells as text in the language, for a terminal table (only `columns`,
    when given)."""
    keep = [i for i, c in enumerate(view.columns) if columns is None or c in columns]
    return (_label(lang, view.name), [_label(lang, view.columns[i]) for i in keep],
            [[cell_text(row[i], lang, tz) for i in keep] for row in view.rows])


# --- terminal tables that fit the terminal ----------------------------------------------------------------------

WORD_CAP = 24  # a word longer than this (an address, a hash) may be folded rather than widen its column
DETAILS = {"uk": "Докладно", "en": "Details"}
LEFT_OUT = {"uk": "не вміщено за цієї ширини: {} (--wide показує всі стовпці)",
            "en": "left out at this width: {} (--wide shows every column)"}
SQUEEZED_WORD = 12  # ... or longer than this, when the terminal is too narrow for the row even so
DETAILS_WIDTH = 30  # the details column is at least this wide (or as wide as its longest line)
# the columns of a report's view that say what a row is: never stacked into the details
KEY_COLUMNS = frozenset({"service", "department", "period", "verdict", "change", "page", "kind", "field"})
# the columns whose cells are long free text or lists: they wrap (the others stay whole on one line)
WRAPPED = frozenset({"department_name", "typed_name", "filed_by", "filed_note", "what", "who", "link", "reason",
                     "matched", "page", "evidence_ref", "declared", "updates", "date_only", "reports", "errors",
                     "detail", "value", "evidence_from", "catalogue"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    """A terminal table's column and how it gives way on a narrow terminal. `wrap`: the cells may wrap between
    words (names, addresses, reasons); otherwise a cell stays whole on one line (ids, dates, grades, numbers).
    `stack`: the order in which columns leave the row when the terminal is too narrow (lowest first), their
    values then shown as `header: value` lines of a last details column, or (`drop`, for a column that repeats
    what another says) not shown at all; None keeps the column in the row whatever the width."""

    header: str
    wrap: bool = False
    stack: int | None = None
    drop: bool = False
    right: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """Which columns a table shows, at which widths (without padding), which are stacked as `header: value` lines
    into a last details column (`details_width` > 0), and which are left out."""

    shown: tuple[int, ...]
    widths: tuple[int, ...]
    stacked: tuple[int, ...] = ()
    dropped: tuple[int, ...] = ()
    details_width: int = 0

    @property
    def total(self) -> int:
        """The table's width: the columns, a cell of padding either side of each, the borders."""
        n = len(self.shown) + (1 if self.stacked else 0)
        return sum(self.widths) + self.details_width + 3 * n + 1


def _words(text: str) -> list[str]:
    return [w for line in text.splitlines() for w in line.split()]


def details_text(headers: Sequence[str], cells: Sequence[str]) -> list[str]:
    """The lines of a details cell: `header: value` for each stacked cell that has a value ("-" says none)."""
    return [f"{h}: {c}" for h, c in zip(headers, cells, strict=True) if c.strip() not in ("", "-")]


def fit(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int | None,
        measure: Callable[[str], int] = len, details: str = "details") -> Layout:
    """Lay a table out for `width` cells (borders and padding of one cell each side included); None: every column
    at its full width. A cell is never cut: a column is at least as wide as its widest unwrappable cell (or, for a
    wrapping column, its longest word up to WORD_CAP; longer ones fold); when even that does not fit, columns leave
    the row in their `stack` order, their values shown as lines of a details column; only when nothing more can
    leave do columns get narrower than a cell (which then folds onto the next line, still whole). A column that
    leaves without a value in any row is left out (there is nothing to stack), as are those marked `drop`."""

    def lines(i: int) -> list[str]:
        return [line for row in rows for line in (row[i].splitlines() or [""])]

    def natural(i: int) -> int:
        return max([measure(columns[i].header), *(measure(x) for x in lines(i))]) or 1

    def least(i: int, cap: int = WORD_CAP) -> int:
        col = columns[i]
        head = max((min(measure(w), cap) for w in _words(col.header)), default=1)
        if col.wrap:
            cells = max((min(measure(w), cap) for x in lines(i) for w in _words(x)), default=1)
        else:
            cells = max((measure(x) for x in lines(i)), default=1)
        return min(natural(i), max(head, cells, 1))

    every = list(range(len(columns)))
    nat = {i: natural(i) for i in every}
    if width is None:
        return Layout(shown=tuple(every), widths=tuple(nat[i] for i in every))
    low = {i: least(i) for i in every}
    order = sorted((i for i in every if columns[i].stack is not None), key=lambda i: (columns[i].stack, -i))
    gone: list[int] = []

    def stacked() -> list[int]:
        return [i for i in every if i in gone and not columns[i].drop and any(details_text(["-"], [row[i]])
                                                                              for row in rows)]

    def details_widths() -> tuple[int, int, int]:
        """The details column's width at the least (its longest word), as it should be, and at full width."""
        texts = [line for row in rows
                 for line in details_text([columns[i].header for i in stacked()], [row[i] for i in stacked()])]
        if not texts:
            return 0, 0, 0
        longest = max(measure(x) for x in [details, *texts])
        words = max(min(measure(w), SQUEEZED_WORD) for x in [details, *texts] for w in _words(x))
        return words, max(words, min(DETAILS_WIDTH, longest)), longest

    while True:
        shown = [i for i in every if i not in gone]
        d_min, d_low, d_nat = details_widths()
        room = width - 3 * (len(shown) + (1 if stacked() else 0)) - 1
        if sum(low[i] for i in shown) + d_low <= room or not order:
            break
        gone.append(order.pop(0))
    widths = {i: low[i] for i in shown}
    d_width = d_low
    if sum(widths.values()) + d_width > room:  # nothing more can leave: long words fold, then the widest give way
        widths = {i: least(i, SQUEEZED_WORD) if columns[i].wrap else low[i] for i in shown}
        d_width = max(d_min, min(d_low, room - sum(widths.values())))
        while sum(widths.values()) + d_width > room and max([*widths.values(), d_width]) > 1:
            widest = max(widths, key=lambda i: widths[i])
            if d_width >= widths[widest]:
                d_width -= 1
            else:
                widths[widest] -= 1
    else:  # share what is left, the smallest wants first and whole: a short cell or header stays on one line
        spare = room - sum(widths.values()) - d_width
        wants = {i: nat[i] - widths[i] for i in shown if nat[i] > widths[i]}
        if d_nat > d_width:
            wants[-1] = d_nat - d_width
        for i in sorted(wants, key=lambda i: wants[i]):
            give = min(wants[i], spare)
            spare -= give
            if i == -1:
                d_width += give
            else:
                widths[i] += give
    return Layout(shown=tuple(shown), widths=tuple(widths[i] for i in shown), stacked=tuple(stacked()),
                  dropped=tuple(i for i in every if i in gone and i not in stacked()),
                  details_width=d_width if stacked() else 0)


def view_columns(view: View, lang: str, columns: Sequence[str] | None) -> list[Column]:
    """The terminal columns of a report's view: its key columns stay, the others leave right to left."""
    keep = [c for c in view.columns if columns is None or c in columns]
    return [Column(header=_label(lang, c), wrap=c in WRAPPED,
                   stack=None if c in KEY_COLUMNS or n == 0 else len(keep) - n) for n, c in enumerate(keep)]


HEAD = """<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em; color: #212121; }
h1 { font-size: 1.6em; } h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; margin-top: 1.5em; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: .5em 0 1.5em; } th, td { border: 1px solid #ddd; padding: 3px 6px;
vertical-align: top; text-align: left; } th { background: #f5f5f5; }
tr:target, article:target { outline: 3px solid #1565c0; }
.v { color: #fff; border-radius: 3px; padding: 0 4px; white-space: nowrap; }
.chips { list-style: none; padding: 0; margin: .3em 0; display: flex; flex-wrap: wrap; gap: 3px; }
.chips li a { display: inline-block; color: #fff; border-radius: 3px; padding: 1px 5px; font-size: 12px;
text-decoration: none; white-space: nowrap; }
pre { background: #fafafa; border: 1px solid #eee; padding: .5em; white-space: pre-wrap; word-break: break-word;
max-height: 30em; overflow: auto; }
.add { color: #1b5e20; } .del { color: #b71c1c; } .meta { color: #616161; } .note { color: #b71c1c; }
.toc ol { margin: .2em 0; } .hash { font-family: monospace; font-size: 12px; word-break: break-all; }
svg.timeline { display: block; width: 100%; height: 46px; margin: .5em 0; }
@media (max-width: 600px) { body { margin: .6em; font-size: 13px; } h1 { font-size: 1.3em; } }
@media print { body { margin: 0; font-size: 11px; } .toc { break-after: page; } section.service { break-before: page; }
pre { max-height: none; overflow: visible; } .scroll { overflow: visible; } a { color: inherit; }
tr, article { break-inside: avoid; } }
</style>
"""

TEMPLATE = """<!doctype html>
<html lang="{{ lang }}">
<head>
{{ head }}<title>{{ L.title }} {{ start }} – {{ end }}</title>
</head>
<body>
<h1>{{ L.title }}</h1>
<p class="meta">{{ L.range }}: {{ start }} – {{ end }} ({{ tz }}). {{ L.generated }}: {{ generated }}.
{{ C.version }}: {{ report.version }}.{% if report.services %} {{ C.filter_services }}:
{{ report.services|join(", ") }}.{% endif %}{% if report.departments %} {{ C.filter_departments }}:
{{ report.departments|join(", ") }}.{% endif %}</p>
<nav class="toc" id="contents"><h2>{{ L.contents }}</h2><ol>
<li><a href="#departments">{{ L.departments }}</a></li>
<li><a href="#rejected">{{ L.rejected_rows }}</a> ({{ report.rejected|length }})</li>
{% for dept, audits in grouped %}<li>{{ dept }}<ol>
{% for a in audits %}<li><a href="#s-{{ a.service.id }}">{{ a.service.name }}</a>
{% for key, n in a.counts().items() if n and key.startswith("periods_") %}{{ verdict(key[8:]) }} {{ n }} {% endfor %}
</li>{% endfor %}</ol></li>{% endfor %}
<li><a href="#about">{{ L.about }}</a></li>
</ol></nav>

<section id="departments"><h2>{{ L.departments }}</h2>
{{ table(views.departments) }}</section>

<section id="rejected"><h2>{{ L.rejected_rows }}</h2>
{% if report.rejected %}<div class="scroll" tabindex="0" role="region" aria-label="{{ L.scrolls }}">
<table><tr><th>{{ L.source }}</th><th>{{ L.typed_name }}</th>
<th>{{ L.filed_by }}</th><th>{{ L.submitted }}</th><th>{{ L.reported_for }}</th><th>{{ L.what }}</th>
<th>{{ L.reason }}</th></tr>
{% for x in report.rejected %}<tr id="x-{{ x.id }}"><td>{{ x.source }}</td><td>{{ x.service_text }}</td>
<td>{{ x.department_text }}</td><td>{{ local(x.submitted_at) }}</td><td>{{ day(x.reported_for) }}</td>
<td>{{ x.what }}</td><td>{{ verdict("rejected") }} {{ why(x) }}</td></tr>{% endfor %}
</table></div>{% else %}<p class="meta">—</p>{% endif %}</section>

{% for a in report.audits %}{% set s = a.service %}
<section class="service" id="s-{{ s.id }}">
<h2>{{ s.name }}</h2>
<p class="meta">{{ s.id }} · {{ dept_name(s.department_id) }} · {{ C[s.regulation.value] }} ·
{{ L.coverage }} {{ "%.0f" % (a.coverage * 100) }} %{% if not a.monitored %} · {{ L.no_pages }}{% endif %}</p>
<h3>{{ L.timeline }}</h3>
{{ timeline(a) }}
<ol class="chips">{% for p in a.periods %}<li><a href="#p-{{ s.id }}-{{ p.period.label }}"
 style="background:{{ colour(p.verdict.value) }}">{{ symbol(p.verdict.value) }} {{ p.period.label }}</a></li>
{% endfor %}</ol>
<p class="meta">{{ L.legend }}</p>
<h3>{{ L.periods }}</h3>
<div class="scroll" tabindex="0" role="region" aria-label="{{ L.scrolls }}">
<table><tr><th>{{ L.period }}</th><th>{{ L.from }}</th><th>{{ L.to }}</th><th>{{ L.verdict }}</th>
<th>{{ L.coverage }}</th><th>{{ L.updates }}</th><th>{{ L.date_only }}</th><th>{{ L.reports }}</th>
<th>{{ L.declared }}</th></tr>
{% for p in a.periods %}<tr id="p-{{ s.id }}-{{ p.period.label }}"><td>{{ p.period.label }}</td>
<td>{{ local(p.period.start) }}</td><td>{{ local(p.period.end) }}</td>
<td>{{ verdict(p.verdict.value) }}{{ from_archive(p) }}</td>
<td>{{ "%.0f" % (p.coverage * 100) }} %</td><td>{{ changes(p.updates) }}</td><td>{{ changes(p.date_only) }}</td>
<td>{{ reports(p.reports) }}</td><td>{% for d in p.declared %}{{ day(d) }} {% endfor %}</td></tr>{% endfor %}
</table></div>
{% set rejected = rejected_of(s.id) %}{% if a.reports or rejected %}<h3>{{ L.reports }}</h3>
<div class="scroll" tabindex="0" role="region" aria-label="{{ L.scrolls }}">
<table><tr><th>{{ L.report }}</th><th>{{ L.source }}</th><th>{{ L.typed_name }}</th>
<th>{{ L.filed_by }}</th><th>{{ L.submitted }}</th><th>{{ L.reported_for }}</th><th>{{ L.what }}</th>
<th>{{ L.who }}</th><th>{{ L.link }}</th><th>{{ L.verdict }}</th><th>{{ L.matched }}</th><th>{{ L.coverage }}</th></tr>
{% for r in a.reports %}{% set e = r.report %}<tr id="r-{{ e.id }}"><td>{{ e.id }}</td><td>{{ e.source }}</td>
<td>{{ e.service_text }}</td><td>{{ e.department_text }}{{ note(e.department_text, s) }}</td>
<td>{{ local(e.submitted_at) }}</td><td>{{ day(e.reported_for) }}</td><td>{{ e.what }}</td><td>{{ e.who }}</td>
<td>{{ link(e.link) }}</td><td>{{ verdict(r.verdict.value) }}{{ from_archive(r) }}</td><td>{{ changes(r.matched) }}</td>
<td>{{ "%.0f" % (r.coverage * 100) }} %</td></tr>{% endfor %}
{% for x in rejected %}<tr><td></td><td>{{ x.source }}</td><td>{{ x.service_text }}</td><td>{{ x.department_text }}</td>
<td>{{ local(x.submitted_at) }}</td><td>{{ day(x.reported_for) }}</td><td>{{ x.what }}</td><td></td>
<td>{{ link(x.link) }}</td><td>{{ verdict("rejected") }}</td><td colspan="2">{{ why(x) }}</td></tr>{% endfor %}
</table></div>{% endif %}
{% if a.updates %}<h3>{{ L.updates }}</h3>
{% for u in a.updates %}
<article id="c-{{ u.id }}"><p><b>{{ L.change }} {{ u.id }}</b> — {{ C.get(u.change_class, u.change_class) }}
{% if u.is_real %} ({{ L.real|lower }}){% endif %}{% if u in a.unreported %} {{ verdict("unreported") }}{% endif %}<br>
<span class="meta">{{ L.page }}: {{ u.url }}; {{ L.window_start }} {{ local(u.window_start) }},
{{ L.detected_at }} {{ local(u.detected_at) }}; +{{ u.added }} −{{ u.removed }} ~{{ u.edited }}</span>
{% if u.evidence %}<br><span class="meta">{{ L.evidence_ref }}:</span>
<span class="hash">{{ u.evidence }}</span>{% endif %}</p>
{% if evidence.get(u.id) %}<pre>{% for line in evidence[u.id] %}<span class="{{ line[0] }}">{{ line[1] }}</span>
{% endfor %}</pre>{% endif %}</article>
{% endfor %}{% endif %}
</section>
{% endfor %}

<section id="about"><h2>{{ L.about }}</h2>
{{ table(about) }}</section>
</body>
</html>
"""


def _env() -> Environment:
    return Environment(autoescape=select_autoescape(default=True, default_for_string=True), trim_blocks=False)


_MORE = re.compile(r"^… (\d+) more diff lines$")


def evidence_lines(evidence: Mapping[int, Mapping[str, Any]], lang: str) -> dict[int, list[tuple[str, str]]]:
    """The stored diffs, with their own words (file names, the cut) in the report's language."""
    words = {"--- before": f"--- {_label(lang, 'before')}", "+++ after": f"+++ {_label(lang, 'after')}"}
    lines: dict[int, list[tuple[str, str]]] = {}
    for change_id, ev in evidence.items():
        out = []
        for line in str(ev.get("diff") or "").splitlines():
            more = _MORE.match(line)
            line = _label(lang, "more_lines").format(n=more.group(1)) if more else words.get(line, line)
            out.append(("add" if line.startswith("+") else "del" if line.startswith("-") else "", line))
        for key, sign in (("documents_added", "+ "), ("documents_removed", "- "), ("links_added", "+ "),
                          ("links_removed", "- ")):
            for url in ev.get(key) or []:
                out.append(("add" if sign.startswith("+") else "del", f"{sign}{url}"))
        lines[change_id] = out
    return lines


def to_html(report: AuditReport, views: Mapping[str, View], about: View, *, lang: str,
            evidence: Mapping[int, Mapping[str, Any]], note: Callable[[str, Any], str]) -> str:
    """The audit as one page: contents, the departments, the rejected rows, then each service (timeline,
    periods, reports, updates with their evidence), every report and period linked to the changes that decide
    it. `note(department_text, service)` says what the department column says against the service."""
    tz, labels, codes = report.tz, LABELS[lang], CODES[lang]

    def local(t: datetime | None) -> str:
        return local_time(t, tz)

    def day(t: datetime | date | None) -> str:
        if isinstance(t, datetime):
            return local(t)[:10]
        return t.isoformat() if t else ""

    def colour(value: str) -> str:
        return COLOURS.get(value, "#616161")

    def symbol(value: str) -> str:
        return SYMBOLS.get(value, "")

    def verdict(value: str) -> Markup:
        return Markup('<span class="v" style="background:{}">{} {}</span>').format(
            colour(value), symbol(value), codes.get(value, value))

    def changes(ids: Sequence[int]) -> Markup:
        return Markup(", ").join(Markup('<a href="#c-{0}">{0}</a>').format(i) for i in ids)

    def reports(ids: Sequence[int]) -> Markup:
        return Markup(", ").join(Markup('<a href="#r-{0}">{0}</a>').format(i) for i in ids)

    def link(url: str) -> Markup:
        if url.lower().startswith(("https://", "http://")):
            return Markup('<a href="{0}" rel="noreferrer noopener nofollow">{0}</a>').format(url)
        return escape(url)

    def note_of(text: str, service: Any) -> Markup:
        found = note(text, service)
        return Markup(' <span class="note">({})</span>').format(codes.get(found, found)) if found else Markup("")

    def table(view: View) -> Markup:
        head = "".join(f"<th>{escape(_label(lang, c))}</th>" for c in view.columns)
        body = "".join("<tr>" + "".join(f"<td>{escape(cell_text(v, lang, tz))}</td>" for v in row) + "</tr>"
                       for row in view.rows)
        return Markup('<div class="scroll" tabindex="0" role="region" aria-label="{}"><table><tr>{}</tr>{}</table>'
                      '</div>').format(_label(lang, "scrolls"), Markup(head), Markup(body))

    def timeline(a: ServiceAudit) -> Markup:
        width, height = 960.0, 46.0
        lo = min([a.start, *(p.period.start for p in a.periods)])
        hi = max([a.end, *(p.period.end for p in a.periods)]) if a.periods else a.end
        span = max(1.0, (hi - lo).total_seconds())

        def x(t: datetime) -> float:
            return round(max(0.0, min(width, (t - lo).total_seconds() / span * width)), 1)

        parts = [f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
                 f'preserveAspectRatio="none" role="img" aria-label="{escape(labels["timeline"])}">']
        for p in a.periods:
            x0, x1 = x(p.period.start), x(p.period.end)
            parts.append(f'<rect x="{x0}" y="4" width="{max(0.5, x1 - x0 - 1)}" height="18" '
                         f'fill="{colour(p.verdict.value)}"><title>{escape(p.period.label)}: '
                         f'{escape(codes[p.verdict.value])}</title></rect>')
        for u in a.updates:
            parts.append(f'<rect x="{x(u.detected_at) - 1}" y="24" width="2" height="10" '
                         f'fill="{"#1b5e20" if u.is_real else "#f9a825"}"></rect>')
        for r in a.reports:
            cx = x(r.report.reported_for)
            parts.append(f'<polygon points="{cx - 4},34 {cx + 4},34 {cx},26" fill="#1565c0"></polygon>')
        for p in a.periods:
            if p.coverage < 1:
                x0, x1 = x(p.period.start), x(p.period.end)
                parts.append(f'<rect x="{x0}" y="38" width="{max(0.5, (x1 - x0) * (1 - p.coverage))}" height="6" '
                             f'fill="#bdbdbd"></rect>')
        parts.append("</svg>")
        return Markup("".join(parts))

    names = {d.id: d.name for d in report.catalogue.departments}

    def dept_name(dept_id: str) -> str:
        return names.get(dept_id) or report.catalogue.department_name(dept_id)

    grouped: dict[str, list[ServiceAudit]] = {}
    for a in report.audits:
        grouped.setdefault(dept_name(a.service.department_id), []).append(a)

    def from_archive(result: Any) -> Markup:
        return Markup(' <span class="note">({})</span>').format(codes["archive"]) if result.archived else Markup("")

    def why(x: Any) -> str:
        return reasons_text(x.reasons, lang)

    def rejected_of(service_id: str) -> list[Any]:
        return [x for x in report.rejected if x.service_id == service_id]

    return _env().from_string(TEMPLATE).render(
        head=Markup(HEAD), lang=lang, L=labels, C=codes, report=report, views=views, about=about,
        start=local(report.start), end=local(report.end), tz=tz, generated=local(report.generated),
        grouped=sorted(grouped.items()), evidence=evidence_lines(evidence, lang), local=local, day=day, colour=colour,
        symbol=symbol, verdict=verdict, changes=changes, reports=reports, link=link, why=why,
        from_archive=from_archive, note=note_of, table=table,
        timeline=timeline, dept_name=dept_name, rejected_of=rejected_of, REJECTED=REJECTED)


TABLES = """<!doctype html>
<html lang="{{ lang }}">
<head>
{{ head }}<title>{{ title }} {{ start }} – {{ end }}</title>
</head>
<body>
<h1>{{ title }}</h1>
<p class="meta">{{ L.range }}: {{ start }} – {{ end }} ({{ tz }}). {{ L.generated }}: {{ generated }}.</p>
{% for name, view in views.items() %}<h2>{{ L.get(name, name) }}</h2>
<div class="scroll" tabindex="0" role="region" aria-label="{{ L.scrolls }}">
<table><tr>{% for c in view.columns %}<th>{{ L.get(c, c) }}</th>{% endfor %}</tr>
{% for row in view.rows %}<tr>{% for v in row %}<td>{{ text(v) }}</td>{% endfor %}</tr>
{% endfor %}</table></div>
{% endfor %}
</body>
</html>
"""


def tables_to_html(title_key: str, views: Mapping[str, View], *, lang: str, tz: str, start: datetime, end: datetime,
                   generated: datetime) -> str:
    """A self-contained page of plain tables (the technical-faults list), with the audit's style and CSP."""
    return _env().from_string(TABLES).render(
        head=Markup(HEAD), lang=lang, L=LABELS[lang], title=_label(lang, title_key), views=views,
        start=local_time(start, tz), end=local_time(end, tz), tz=tz, generated=local_time(generated, tz),
        text=lambda v: cell_text(v, lang, tz))


__all__ = ["DETAILS", "LEFT_OUT", "Column", "Layout", "audit_meta", "cell_text", "details_text", "fit", "labelled",
           "tables_to_html", "to_csv", "to_html", "to_json", "to_xlsx", "view_columns"]
