"""The digest as people read it: the email's subject and plain text, and the chat's short form.
Times are shown in the digest's zone."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from domain.digest import Digest, DigestItem, DigestReview, Figures
from domain.policy import format_duration


def local(digest: Digest, moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(ZoneInfo(digest.timezone)).strftime("%a %d %b %H:%M")


def subject(digest: Digest) -> str:
    declared = sum(s.declared for s in digest.incidents)
    overdue = digest.action_items.overdue
    week = digest.week_start.astimezone(ZoneInfo(digest.timezone)).strftime("%d %b")
    return (
        f"afteraction weekly digest, week of {week}: {declared} declared, "
        f"{len(digest.reviews.overdue)} reviews overdue, {overdue} items overdue"
    )


def seconds(value: float | None) -> str:
    return "—" if value is None else format_duration(timedelta(seconds=round(value)))


def rate(figures: Figures) -> str:
    if figures.on_time_rate is None:
        return "—"
    return f"{figures.on_time_rate:.0%} ({figures.on_time} of {figures.closed})"


def functions(review: DigestReview) -> str:
    if not review.missing_functions:
        return "all required functions"
    names = ", ".join(review.missing_functions)
    return f"missing {names}" + (" (waived)" if review.waived else "")


def item_line(digest: Digest, item: DigestItem) -> str:
    owner = item.owner or "no owner"
    rung = f", escalated to {item.rung}" if item.rung else ""
    return f"{item.id} {item.title} — {owner}, due {local(digest, item.due_at)}{rung}"


def plain_text(digest: Digest) -> str:
    lines = [
        subject(digest),
        f"Week {local(digest, digest.week_start)} → {local(digest, digest.week_end)} "
        f"({digest.timezone}); due: up to {local(digest, digest.ahead_end)}",
        "",
        "INCIDENTS (declared this week / still open)",
    ]
    for section in digest.incidents:
        lines.append(f"  {section.severity}: {section.declared} declared, {section.open} open")
        for found in section.incidents:
            lines.append(f"    {found.key} [{found.state}] {found.title}")
        if section.more:
            lines.append(f"    … and {section.more} more")
    reviews = digest.reviews
    lines += ["", "REVIEWS"]
    for label, listed in (("due", reviews.due), ("overdue", reviews.overdue)):
        lines.append(f"  {label}: {len(listed)}")
        for review in listed:
            lines.append(f"    {review.key} {review.title} — due {local(digest, review.due_at)}")
    lines.append(f"  held: {len(reviews.held)}")
    for review in reviews.held:
        lines.append(
            f"    {review.key} {review.title} — held {local(digest, review.held_at)}, "
            f"{functions(review)}"
        )
    items = digest.action_items
    lines += ["", "ACTION ITEMS", f"  due this week: {len(items.due)}"]
    lines += [f"    {item_line(digest, item)}" for item in items.due]
    lines.append(f"  overdue: {items.overdue}")
    for team in items.overdue_by_team:
        lines.append(f"    {team.team}:")
        lines += [f"      {item_line(digest, item)}" for item in team.items]
    trend, week, before = digest.trend, digest.trend.week, digest.trend.previous_four_weeks
    lines += [
        "",
        f"TREND (this week vs the four weeks before; definitions v{trend.definitions_version})",
        f"  on-time closure: {rate(week)} vs {rate(before)}",
        f"  time to review (p50): {seconds(week.time_to_review_p50)} vs "
        f"{seconds(before.time_to_review_p50)}",
        "",
        f"REPEATS: {digest.repeats.count}",
    ]
    for repeat in digest.repeats.incidents:
        lines.append(f"  {repeat.key} {repeat.title} → {', '.join(repeat.repeat_of)}")
    lines += ["", f"RISK ACCEPTANCES: {len(digest.risk_acceptances)}"]
    for accepted in digest.risk_acceptances:
        lines.append(
            f"  {accepted.id} {accepted.title} ({accepted.owning_team}) — approved by "
            f"{accepted.approver or 'unknown'}, {local(digest, accepted.accepted_at)}"
        )
    return "\n".join(lines) + "\n"


def chat_text(digest: Digest) -> str:
    """The short form: the counts that need someone's attention, in a few lines."""
    declared = ", ".join(f"{s.severity} {s.declared}" for s in digest.incidents if s.declared)
    week = digest.trend.week
    return "\n".join(
        [
            f"*afteraction weekly digest* ({local(digest, digest.week_start)} → "
            f"{local(digest, digest.week_end)})",
            f"Declared: {declared or 'none'}; open: {sum(s.open for s in digest.incidents)}",
            f"Reviews: {len(digest.reviews.due)} due, {len(digest.reviews.overdue)} overdue, "
            f"{len(digest.reviews.held)} held",
            f"Action items: {len(digest.action_items.due)} due, "
            f"{digest.action_items.overdue} overdue",
            f"On-time closure {rate(week)}; repeats {digest.repeats.count}; "
            f"risks accepted {len(digest.risk_acceptances)}",
        ]
    )
