"""The audit for people: a terminal table, CSV, JSON, XLSX (one sheet per view) and one self-contained HTML
file an auditor can open and forward. Page content is untrusted: the HTML escapes everything, carries no
script and forbids any with its Content-Security-Policy."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, select_autoescape

from monitor.audit import PeriodVerdict, ReportVerdict, ServiceAudit
from monitor.auditing import LABELS, View

COLOURS = {"compliant": "#2e7d32", "missed": "#c62828", "unknown": "#9e9e9e", "confirmed": "#2e7d32",
           "date_only": "#f9a825", "unconfirmed": "#c62828", "unverifiable": "#9e9e9e", "unreported": "#6a1b9a"}


def _label(lang: str, key: str) -> str:
    return LABELS[lang].get(key, key)


def to_csv(view: View, lang: str) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([_label(lang, c) for c in view.columns])
    for row in view.rows:
        w.writerow(row)
    return out.getvalue()


def to_json(views: Mapping[str, View], meta: Mapping[str, Any]) -> str:
    doc = {**meta, **{name: [dict(zip(v.columns, row, strict=True)) for row in v.rows] for name, v in views.items()}}
    return json.dumps(doc, ensure_ascii=False, indent=2, default=str)


def to_xlsx(views: Mapping[str, View], lang: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    first = True
    for name, view in views.items():
        ws = wb.active if first else wb.create_sheet()
        first = False
        assert ws is not None
        ws.title = _label(lang, name)[:31]
        ws.append([_label(lang, c) for c in view.columns])
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in view.rows:
            ws.append([_label(lang, v) if isinstance(v, str) and v in COLOURS else v for v in row])
        from openpyxl.utils import get_column_letter

        for index, column in enumerate(ws.columns, start=1):
            width = max((len(str(c.value or "")) for c in column), default=8)
            ws.column_dimensions[get_column_letter(index)].width = min(60, max(8, width + 2))
        ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


HEAD = """<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #212121; }
h1 { font-size: 1.6em; } h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .5em 0 1.5em; } th, td { border: 1px solid #ddd; padding: 3px 6px;
vertical-align: top; text-align: left; } th { background: #f5f5f5; }
.v { color: #fff; border-radius: 3px; padding: 0 4px; white-space: nowrap; }
pre { background: #fafafa; border: 1px solid #eee; padding: .5em; white-space: pre-wrap; word-break: break-word;
max-height: 30em; overflow: auto; }
.add { color: #1b5e20; } .del { color: #b71c1c; } .meta { color: #616161; }
svg { display: block; margin: .5em 0; }
</style>
"""

TEMPLATE = """<!doctype html>
<html lang="{{ lang }}">
<head>
{{ head }}<title>{{ L.title }} {{ start }} – {{ end }}</title>
</head>
<body>
<h1>{{ L.title }}</h1>
<p class="meta">{{ L.range }}: {{ start }} – {{ end }} ({{ tz }}). {{ L.generated }}: {{ generated }}.</p>
<h2>{{ L.departments }}</h2>
{{ table(views.departments) }}
{% for a in audits %}
<h2 id="s-{{ a.service.id }}">{{ a.service.name }} <span class="meta">({{ a.service.id }},
 {{ a.service.department }}, {{ a.service.regulation.value }})</span></h2>
{% if not a.monitored %}<p class="meta">{{ L.no_pages }}</p>{% endif %}
<p class="meta">{{ L.coverage }}: {{ "%.0f" % (a.coverage * 100) }} %</p>
<h3>{{ L.timeline }}</h3>
{{ timeline(a) }}
<p class="meta">{{ L.legend }}</p>
<h3>{{ L.periods }}</h3>
<table><tr><th>{{ L.period }}</th><th>{{ L.verdict }}</th><th>{{ L.coverage }}</th><th>{{ L.updates }}</th>
<th>{{ L.date_only }}</th><th>{{ L.reports }}</th><th>{{ L.declared }}</th></tr>
{% for p in a.periods %}<tr><td>{{ p.period.label }}</td><td>{{ verdict(p.verdict.value) }}</td>
<td>{{ "%.0f" % (p.coverage * 100) }} %</td><td>{{ p.updates|join(", ") }}</td><td>{{ p.date_only|join(", ") }}</td>
<td>{{ p.reports|join(", ") }}</td><td>{% for d in p.declared %}{{ local(d) }} {% endfor %}</td></tr>{% endfor %}
</table>
{% if a.reports %}<h3>{{ L.reports }}</h3>
<table><tr><th>{{ L.report }}</th><th>{{ L.submitted }}</th><th>{{ L.reported_for }}</th><th>{{ L.what }}</th>
<th>{{ L.who }}</th><th>{{ L.verdict }}</th><th>{{ L.matched }}</th></tr>
{% for r in a.reports %}<tr><td>{{ r.report.id }}</td><td>{{ local(r.report.submitted_at) }}</td>
<td>{{ local(r.report.reported_for)[:10] }}</td><td>{{ r.report.what }}</td><td>{{ r.report.who }}</td>
<td>{{ verdict(r.verdict.value) }}</td><td>{{ r.matched|join(", ") }}</td></tr>{% endfor %}</table>{% endif %}
{% if a.updates %}<h3>{{ L.updates }}</h3>
{% for u in a.updates %}
<p><b>{{ L.change }} {{ u.id }}</b> — {{ u.change_class }}{% if u.is_real %} ({{ L.real }}){% endif %}
{% if u in a.unreported %} {{ verdict("unreported") }}{% endif %}<br>
<span class="meta">{{ L.page }}: {{ u.url }}; {{ L.window_start }} {{ local(u.window_start) }},
{{ L.detected_at }} {{ local(u.detected_at) }}; +{{ u.added }} −{{ u.removed }} ~{{ u.edited }}</span></p>
{% if evidence.get(u.id) %}<pre>{% for line in evidence[u.id] %}<span class="{{ line[0] }}">{{ line[1] }}</span>
{% endfor %}</pre>{% endif %}
{% endfor %}{% endif %}
{% endfor %}
</body>
</html>
"""


def _env() -> Environment:
    return Environment(autoescape=select_autoescape(default=True, default_for_string=True), trim_blocks=False)


def to_html(audits: Sequence[ServiceAudit], views: Mapping[str, View], *, lang: str, tz: str, start: datetime,
            end: datetime, generated: datetime, evidence: Mapping[int, Mapping[str, Any]]) -> str:
    env = _env()
    zone = ZoneInfo(tz)
    labels = LABELS[lang]
    from markupsafe import Markup, escape

    def local(t: datetime | None) -> str:
        return t.astimezone(zone).strftime("%Y-%m-%d %H:%M") if t else ""

    def verdict(value: str) -> Markup:
        return Markup('<span class="v" style="background:{}">{}</span>').format(
            COLOURS.get(value, "#616161"), labels.get(value, value))

    def table(view: View) -> Markup:
        head = "".join(f"<th>{escape(labels.get(c, c))}</th>" for c in view.columns)
        body = "".join("<tr>" + "".join(f"<td>{escape(v)}</td>" for v in row) + "</tr>" for row in view.rows)
        return Markup(f"<table><tr>{head}</tr>{body}</table>")

    def timeline(a: ServiceAudit) -> Markup:
        width, height = 960.0, 46.0
        span = max(1.0, (a.end - a.start).total_seconds())

        def x(t: datetime) -> float:
            return round(max(0.0, min(width, (t - a.start).total_seconds() / span * width)), 1)

        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" role="img">']
        for p in a.periods:
            x0, x1 = x(max(p.period.start, a.start)), x(min(p.period.end, a.end))
            parts.append(f'<rect x="{x0}" y="4" width="{max(0.5, x1 - x0 - 1)}" height="18" '
                         f'fill="{COLOURS[p.verdict.value]}"><title>{escape(p.period.label)}: '
                         f'{escape(labels[p.verdict.value])}</title></rect>')
        for u in a.updates:
            colour = "#1b5e20" if u.is_real else "#f9a825"
            parts.append(f'<rect x="{x(u.detected_at) - 1}" y="24" width="2" height="10" fill="{colour}">'
                         f'<title>{escape(str(u.id))} {escape(u.change_class)} {escape(local(u.detected_at))}'
                         f'</title></rect>')
        for r in a.reports:
            cx = x(r.report.reported_for)
            parts.append(f'<polygon points="{cx - 4},34 {cx + 4},34 {cx},26" fill="#1565c0">'
                         f'<title>{escape(str(r.report.id))}: {escape(labels[r.verdict.value])}</title></polygon>')
        watched = sorted(((max(p.period.start, a.start), min(p.period.end, a.end), p.coverage) for p in a.periods),
                         key=lambda t: t[0])
        for p0, p1, cov in watched:
            if cov < 1:
                x0, x1 = x(p0), x(p1)
                parts.append(f'<rect x="{x0}" y="38" width="{max(0.5, (x1 - x0) * (1 - cov))}" height="6" '
                             f'fill="#bdbdbd"><title>{escape(labels["coverage"])}: {cov:.0%}</title></rect>')
        parts.append("</svg>")
        return Markup("".join(parts))

    lines: dict[int, list[tuple[str, str]]] = {}
    for change_id, ev in evidence.items():
        out = []
        for line in str(ev.get("diff") or "").splitlines():
            out.append(("add" if line.startswith("+") else "del" if line.startswith("-") else "", line))
        for key, sign in (("documents_added", "+ "), ("documents_removed", "- "), ("links_added", "+ "),
                          ("links_removed", "- ")):
            for url in ev.get(key) or []:
                out.append(("add" if sign.startswith("+") else "del", f"{sign}{url}"))
        lines[change_id] = out
    return env.from_string(TEMPLATE).render(
        head=Markup(HEAD), lang=lang, L=labels, audits=audits, views=views, start=local(start), end=local(end), tz=tz,
        generated=local(generated), evidence=lines, local=local, verdict=verdict, table=table, timeline=timeline)


TABLES = """<!doctype html>
<html lang="{{ lang }}">
<head>
{{ head }}<title>{{ title }} {{ start }} – {{ end }}</title>
</head>
<body>
<h1>{{ title }}</h1>
<p class="meta">{{ L.range }}: {{ start }} – {{ end }} ({{ tz }}). {{ L.generated }}: {{ generated }}.</p>
{% for name, view in views.items() %}<h2>{{ L.get(name, name) }}</h2>
<table><tr>{% for c in view.columns %}<th>{{ L.get(c, c) }}</th>{% endfor %}</tr>
{% for row in view.rows %}<tr>{% for v in row %}<td>{{ L.get(v, v) if v is string else v }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% endfor %}
</body>
</html>
"""


def tables_to_html(title_key: str, views: Mapping[str, View], *, lang: str, tz: str, start: datetime, end: datetime,
                   generated: datetime) -> str:
    """A self-contained page of plain tables (the technical-faults list), with the audit's style and CSP."""
    from markupsafe import Markup

    zone = ZoneInfo(tz)
    labels = LABELS[lang]

    def local(t: datetime) -> str:
        return t.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    return _env().from_string(TABLES).render(
        head=Markup(HEAD), lang=lang, L=labels, title=labels[title_key], views=views, start=local(start),
        end=local(end), tz=tz, generated=local(generated))


def labelled(view: View, lang: str) -> tuple[str, list[str], list[list[str]]]:
    """A view's title, column names and cells as text in the language, for a terminal table."""
    return (_label(lang, view.name), [_label(lang, c) for c in view.columns],
            [[_label(lang, v) if isinstance(v, str) and v in COLOURS else str(v) for v in row] for row in view.rows])


__all__ = ["PeriodVerdict", "ReportVerdict", "labelled", "tables_to_html", "to_csv", "to_html", "to_json", "to_xlsx"]
