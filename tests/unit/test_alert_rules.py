"""deploy/alerts/billy.rules.yml: every expression uses only series billy exports, every
alert has its runbook section, and the checks can fail."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.test_metrics_contract import billy_series, promql_metric_names

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "alerts" / "billy.rules.yml"
RUNBOOK = REPO / "deploy" / "RUNBOOK.md"

_ALERT = re.compile(r"^\s*- alert:\s*(\S+)\s*$")
_EXPR = re.compile(r"^\s*expr:\s*(.+?)\s*$")


def alert_rules(text: str) -> list[tuple[str, str]]:
    """(alert, expr) pairs; each alert must have exactly one one-line expr before the next."""
    rules: list[tuple[str, str]] = []
    current: str | None = None
    for line in text.splitlines():
        alert = _ALERT.match(line)
        if alert:
            if current is not None:
                raise ValueError(f"{current}: no expr")
            current = alert.group(1)
            continue
        expr = _EXPR.match(line)
        if expr:
            if current is None:
                raise ValueError(f"an expr outside an alert: {expr.group(1)}")
            if expr.group(1) in ("|", ">", "|-", ">-"):
                raise ValueError(f"{current}: expr must be one line")
            rules.append((current, expr.group(1)))
            current = None
    if current is not None:
        raise ValueError(f"{current}: no expr")
    return rules


def rule_problems(text: str, allowed: dict[str, str]) -> list[str]:
    problems = []
    for alert, expr in alert_rules(text):
        for name in sorted(promql_metric_names(expr)):
            if name not in allowed:
                problems.append(f"{alert}: {name!r} is not a series billy exposes")
    return problems


def test_every_expression_uses_only_billys_metrics() -> None:
    text = RULES.read_text(encoding="utf-8")
    assert len(alert_rules(text)) >= 8
    assert rule_problems(text, billy_series()) == []


def test_what_must_be_alerted_is() -> None:
    used = {
        name
        for _, expr in alert_rules(RULES.read_text(encoding="utf-8"))
        for name in promql_metric_names(expr)
    }
    for metric in (
        "billy_consumer_lag",
        "billy_outbox_oldest_seconds",
        "billy_dlq_records_total",
        "billy_offset_conflicts_total",
        "billy_offset_mismatches_total",
        "billy_progress_timestamp_seconds",
        "billy_dependency_up",
        "billy_reconciliations_total",
    ):
        assert metric in used, metric


def test_every_alert_has_a_runbook_section() -> None:
    runbook = RUNBOOK.read_text(encoding="utf-8")
    headings = {m.lower() for m in re.findall(r"^###\s+(\S+)", runbook, re.MULTILINE)}
    for alert, _ in alert_rules(RULES.read_text(encoding="utf-8")):
        assert alert.lower() in headings, f"{alert}: no '### {alert}' in deploy/RUNBOOK.md"
        assert f"deploy/RUNBOOK.md#{alert.lower()}" in RULES.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("expr", "flagged"),
    [
        ("rate(billy_bogus_total[5m]) > 0", "billy_bogus_total"),
        ("billy_consumer_lag_total > 0", "billy_consumer_lag_total"),
        ("sum(rate(billy_commands[5m]))", "billy_commands"),
        ('up{job="billy"} == 0', "up"),
    ],
)
def test_rule_check_can_fail(expr: str, flagged: str) -> None:
    text = f"groups:\n  - name: x\n    rules:\n      - alert: Bad\n        expr: {expr}\n"
    assert rule_problems(text, billy_series()) == [
        f"Bad: {flagged!r} is not a series billy exposes"
    ]


def test_parser_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="no expr"):
        alert_rules("      - alert: A\n      - alert: B\n        expr: x\n")
    with pytest.raises(ValueError, match="one line"):
        alert_rules("      - alert: A\n        expr: |\n          x\n")
