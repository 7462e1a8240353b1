"""The digest as the HTML part of its email (Jinja2, autoescaped: titles are people's text)."""

from __future__ import annotations

from jinja2 import Environment, StrictUndefined

from domain.digest import Digest
from domain.digest_text import functions, item_line, local, rate, seconds, subject

_TEMPLATE = """\
<!doctype html>
<html><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="font-family: sans-serif">
<h1>{{ subject }}</h1>
<p>Week {{ local(d.week_start) }} → {{ local(d.week_end) }} ({{ d.timezone }});
due: up to {{ local(d.ahead_end) }}</p>
<h2>Incidents</h2>
<table>
<tr><th>Severity</th><th>Declared</th><th>Open</th><th>Incidents</th></tr>
{% for s in d.incidents %}
<tr><td>{{ s.severity }}</td><td>{{ s.declared }}</td><td>{{ s.open }}</td>
<td>{% for i in s.incidents %}{{ i.key }} [{{ i.state }}] {{ i.title }}<br>{% endfor %}
{% if s.more %}… and {{ s.more }} more{% endif %}</td></tr>
{% endfor %}
</table>
<h2>Reviews</h2>
<h3>Due ({{ d.reviews.due | length }})</h3>
<ul>{% for r in d.reviews.due %}<li>{{ r.key }} {{ r.title }}, due {{ local(r.due_at) }}</li>
{% endfor %}</ul>
<h3>Overdue ({{ d.reviews.overdue | length }})</h3>
<ul>{% for r in d.reviews.overdue %}<li>{{ r.key }} {{ r.title }}, due {{ local(r.due_at) }}</li>
{% endfor %}</ul>
<h3>Held ({{ d.reviews.held | length }})</h3>
<ul>{% for r in d.reviews.held %}<li>{{ r.key }} {{ r.title }}, held {{ local(r.held_at) }},
{{ functions(r) }}</li>{% endfor %}</ul>
<h2>Action items</h2>
<h3>Due this week ({{ d.action_items.due | length }})</h3>
<ul>{% for i in d.action_items.due %}<li>{{ item_line(i) }}</li>{% endfor %}</ul>
<h3>Overdue ({{ d.action_items.overdue }})</h3>
{% for t in d.action_items.overdue_by_team %}<h4>{{ t.team }}</h4>
<ul>{% for i in t.items %}<li>{{ item_line(i) }}</li>{% endfor %}</ul>{% endfor %}
<h2>Trend</h2>
<table>
<tr><th></th><th>This week</th><th>Four weeks before</th></tr>
<tr><td>On-time closure</td><td>{{ rate(d.trend.week) }}</td>
<td>{{ rate(d.trend.previous_four_weeks) }}</td></tr>
<tr><td>Time to review (p50)</td><td>{{ seconds(d.trend.week.time_to_review_p50) }}</td>
<td>{{ seconds(d.trend.previous_four_weeks.time_to_review_p50) }}</td></tr>
</table>
<p>Metric definitions v{{ d.trend.definitions_version }}.</p>
<h2>Repeats ({{ d.repeats.count }})</h2>
<ul>{% for r in d.repeats.incidents %}<li>{{ r.key }} {{ r.title }} → {{ r.repeat_of | join(", ") }}
</li>{% endfor %}</ul>
<h2>Risk acceptances ({{ d.risk_acceptances | length }})</h2>
<ul>{% for a in d.risk_acceptances %}<li>{{ a.id }} {{ a.title }} ({{ a.owning_team }}),
approved by {{ a.approver or "unknown" }}, {{ local(a.accepted_at) }}</li>{% endfor %}</ul>
</body></html>
"""

_ENVIRONMENT = Environment(autoescape=True, undefined=StrictUndefined)
_COMPILED = _ENVIRONMENT.from_string(_TEMPLATE)


def html(digest: Digest) -> str:
    return _COMPILED.render(
        d=digest,
        subject=subject(digest),
        local=lambda moment: local(digest, moment),
        item_line=lambda item: item_line(digest, item),
        functions=functions,
        rate=rate,
        seconds=seconds,
    )
