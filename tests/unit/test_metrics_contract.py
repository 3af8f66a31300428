"""The metrics contract: billy_core/metrics.py's table, its labels, and the Grafana dashboard.

1. The docstring table of billy_core/metrics.py and the metric objects it defines agree:
   same names, types and labels, no row without a metric and no metric without a row.
2. Labels are bounded: nothing named like a client, command or hold id, an email or a name.
3. deploy/grafana/billy.json is valid JSON, every metric name in its queries is a series
   billy exposes, and every billy metric is shown.

Names: prometheus_client strips `_total` from a Counter's name (`Counter("billy_commands_total")`
is the family `billy_commands`, with the sample `billy_commands_total`); histograms expose
`_bucket`, `_sum` and `_count`. The exposed series names here come from prometheus_client
itself (a copy of each metric in a private registry), not from suffix rules written by hand.

Each checker is also run on a broken input, so a check that cannot fail is noticed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

import billy_core.metrics as billy_metrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "billy.json"

# name -> (type, labels in declaration order)
Spec = dict[str, tuple[str, tuple[str, ...]]]


# --- the table and the definitions ------------------------------------------------------


def table_specs(doc: str) -> Spec:
    """The `| name | type | labels | meaning |` table of a docstring."""
    rows = [line.strip() for line in doc.splitlines() if line.strip().startswith("|")]
    if len(rows) < 2:
        raise ValueError("no table in the docstring")
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    if header[:3] != ["name", "type", "labels"]:
        raise ValueError(f"unexpected table header {header}")
    specs: Spec = {}
    for row in rows[2:]:  # after the header and the --- line
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        name, kind, labels = cells[0], cells[1], cells[2]
        if name in specs:
            raise ValueError(f"{name}: two rows")
        specs[name] = (kind, tuple(label.strip() for label in labels.split(",") if label.strip()))
    return specs


def metric_objects(module) -> dict[str, MetricWrapperBase]:
    """Every Counter, Gauge, Histogram... defined at the top level of a module, by attribute."""
    return {
        attr: value for attr, value in vars(module).items() if isinstance(value, MetricWrapperBase)
    }


def exposed_name(metric: MetricWrapperBase) -> str:
    """The name as written in the table: a counter's with `_total` (prometheus_client keeps
    `_name` without it), any other type's as defined."""
    return metric._name + "_total" if metric._type == "counter" else metric._name


def defined_specs(module) -> Spec:
    specs: Spec = {}
    for attr, metric in metric_objects(module).items():
        name = exposed_name(metric)
        if name in specs:
            raise ValueError(f"{name}: defined twice ({attr})")
        specs[name] = (metric._type, tuple(metric._labelnames))
    return specs


def contract_mismatches(table: Spec, defined: Spec) -> list[str]:
    problems = []
    for name in sorted(defined.keys() - table.keys()):
        problems.append(f"{name}: defined, but no row in the table")
    for name in sorted(table.keys() - defined.keys()):
        problems.append(f"{name}: a row in the table, but no such metric")
    for name in sorted(table.keys() & defined.keys()):
        (t_kind, t_labels), (d_kind, d_labels) = table[name], defined[name]
        if t_kind != d_kind:
            problems.append(f"{name}: type {d_kind} defined, {t_kind} in the table")
        if t_labels != d_labels:
            problems.append(
                f"{name}: labels {list(d_labels)} defined, {list(t_labels)} in the table"
            )
    return problems


def test_table_matches_definitions() -> None:
    table = table_specs(billy_metrics.__doc__)
    defined = defined_specs(billy_metrics)
    assert defined, "no metric objects found in billy_core.metrics"
    assert contract_mismatches(table, defined) == []


def test_table_check_can_fail() -> None:
    doc = billy_metrics.__doc__
    good = table_specs(doc)
    defined = defined_specs(billy_metrics)

    retyped = doc.replace(
        "| billy_commands_total | counter | tenant, kind, code |",
        "| billy_commands_total | gauge | tenant, code |",
    )
    assert retyped != doc
    assert contract_mismatches(table_specs(retyped), defined) == [
        "billy_commands_total: type counter defined, gauge in the table",
        "billy_commands_total: labels ['tenant', 'kind', 'code'] defined, "
        "['tenant', 'code'] in the table",
    ]

    dropped = {k: v for k, v in good.items() if k != "billy_outbox_backlog"}
    assert contract_mismatches(dropped, defined) == [
        "billy_outbox_backlog: defined, but no row in the table"
    ]

    extra = {**good, "billy_not_a_metric_total": ("counter", ("method", "outcome"))}
    assert contract_mismatches(extra, defined) == [
        "billy_not_a_metric_total: a row in the table, but no such metric"
    ]

    # A counter named without `_total` is still exposed (and tabled) with it.
    registry = CollectorRegistry()
    bare = Counter("billy_things", "x", registry=registry)
    assert exposed_name(bare) == "billy_things_total"


# --- bounded labels ------------------------------------------------------------------------

# Unbounded identities: client/command/hold ids (or any *_id), emails, names.
_UNBOUNDED_LABEL = re.compile(r"client|e_?mail|(^|_)(id|name)$", re.IGNORECASE)


def unbounded_labels(specs: Spec) -> list[str]:
    return [
        f"{name}: label {label!r} is not bounded"
        for name, (_, labels) in sorted(specs.items())
        for label in labels
        if _UNBOUNDED_LABEL.search(label)
    ]


def test_labels_are_bounded() -> None:
    assert unbounded_labels(defined_specs(billy_metrics)) == []


@pytest.mark.parametrize(
    "label", ["client_id", "client", "command_id", "hold_id", "email", "user_email", "name", "id"]
)
def test_label_check_can_fail(label: str) -> None:
    registry = CollectorRegistry()

    class Module:  # stands in for billy_core.metrics
        bad = Counter("billy_bad_total", "x", ["tenant", label], registry=registry)

    assert unbounded_labels(defined_specs(Module)) == [
        f"billy_bad_total: label {label!r} is not bounded"
    ]


@pytest.mark.parametrize(
    "label", ["tenant", "kind", "code", "topic", "topic_kind", "role", "source"]
)
def test_label_check_allows_billys_labels(label: str) -> None:
    assert unbounded_labels({"billy_x_total": ("counter", (label,))}) == []


# --- the dashboard ---------------------------------------------------------------------------


def series_names(metric: MetricWrapperBase) -> set[str]:
    """The sample names prometheus_client exposes for a metric, from a copy of it (same type,
    name and labels) in a private registry, with one child so that every sample appears."""
    registry = CollectorRegistry()
    kind = type(metric)
    copy = kind(metric._name, metric._documentation, metric._labelnames, registry=registry)
    child = copy.labels(*["x"] * len(metric._labelnames)) if metric._labelnames else copy
    if isinstance(copy, Counter):
        child.inc()
    elif isinstance(copy, Gauge):
        child.set(1)
    elif isinstance(copy, Histogram):
        child.observe(1)
    else:
        raise TypeError(f"{metric._name}: {kind.__name__} not handled here")
    return {sample.name for family in registry.collect() for sample in family.samples}


def billy_series(module=billy_metrics) -> dict[str, str]:
    """Exposed series name -> the metric (table name) it belongs to."""
    return {
        series: exposed_name(metric)
        for metric in metric_objects(module).values()
        for series in series_names(metric)
    }


_NAME_MATCHER = re.compile(r"""__name__\s*=~?\s*["']([^"']*)["']""")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_RANGE = re.compile(r"\[[^\[\]]*\]")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "inf", "nan",
}  # fmt: skip
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.*?)\s*,\s*\w+\s*\)\s*$", re.DOTALL)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (Grafana variables allowed): what is left
    once strings, label matchers, ranges, variables, grouping clauses, function names and
    keywords are taken out. `{__name__="..."}` selectors count too."""
    names = set(_NAME_MATCHER.findall(expr))
    text = _MATCHERS.sub(" ", expr)
    text = _STRING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _VARIABLE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names |= {m for m in _IDENT.findall(text) if m.lower() not in _KEYWORDS}
    return names


def dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(where, PromQL) for every `expr` anywhere in the dashboard, and the metric part of
    every `label_values(metric, label)` variable query."""
    found: list[tuple[str, str]] = []

    def walk(node, where: str) -> None:
        if isinstance(node, dict):
            here = node.get("title") or node.get("name") or where
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    found.append((here, value))
                else:
                    walk(value, here)
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(dashboard.get("panels", []), "panels")
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        query = query.get("query", "") if isinstance(query, dict) else (query or "")
        label_values = _LABEL_VALUES.match(query)
        if label_values:
            found.append((f"variable {variable.get('name')}", label_values.group(1)))
        elif query.strip().startswith("query_result("):
            found.append((f"variable {variable.get('name')}", query.strip()[13:-1]))
    return found


def dashboard_problems(path: Path, allowed: dict[str, str]) -> list[str]:
    """Why a dashboard file is not fit: invalid JSON, no queries, or metric names that are
    not series billy exposes."""
    try:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return [f"{path.name}: not valid JSON ({exc})"]
    queries = dashboard_queries(dashboard)
    if not queries:
        return [f"{path.name}: no queries"]
    problems = []
    for where, expr in queries:
        for name in sorted(promql_metric_names(expr)):
            if name not in allowed:
                problems.append(f"{where}: {name!r} is not a series billy exposes")
    return problems


def dashboard_coverage_gaps(path: Path, allowed: dict[str, str]) -> list[str]:
    """billy metrics (table names) no dashboard query shows."""
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    used = {
        allowed[name]
        for _, expr in dashboard_queries(dashboard)
        for name in promql_metric_names(expr)
        if name in allowed
    }
    return sorted(set(allowed.values()) - used)


def test_series_names_follow_prometheus_client() -> None:
    series = billy_series()
    assert series["billy_commands_total"] == "billy_commands_total"
    assert "billy_commands" not in series
    assert "billy_commands_total_total" not in series
    assert series.keys() >= {
        "billy_apply_seconds_bucket",
        "billy_apply_seconds_sum",
        "billy_apply_seconds_count",
        "billy_consumer_lag",
        "billy_outbox_backlog",
    }
    assert "billy_apply_seconds" not in series
    assert "billy_consumer_lag_total" not in series


def test_dashboard_is_valid_and_uses_only_billys_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["tenant"]["query"]["query"] == "label_values(billy_commands_total, tenant)"
    assert dashboard_problems(DASHBOARD, billy_series()) == []


def test_dashboard_shows_every_metric() -> None:
    assert dashboard_coverage_gaps(DASHBOARD, billy_series()) == []


def test_promql_metric_names() -> None:
    assert promql_metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(billy_apply_seconds_bucket{a="b"}[5m])))'
    ) == {"billy_apply_seconds_bucket"}
    assert promql_metric_names(
        'sum(rate(x_total{tenant=~"$tenant", code!="ok"}[$__rate_interval])) by (tenant)\n'
        "/ on (tenant) group_left sum without (kind) (y offset 5m) > bool 0.5"
    ) == {"x_total", "y"}
    assert promql_metric_names('{__name__="z_total", job="billy"}') == {"z_total"}
    assert promql_metric_names("sum(rate(z_total[5m:1m])) or vector(0)") == {"z_total"}


@pytest.mark.parametrize(
    ("bad", "flagged"),
    [
        ("rate(billy_bogus_total[5m])", "billy_bogus_total"),
        ("rate(billy_commands[5m])", "billy_commands"),  # the family name, no such series
        ("rate(billy_commands_total_total[5m])", "billy_commands_total_total"),
        ("histogram_quantile(0.5, rate(billy_apply_seconds[5m]))", "billy_apply_seconds"),
        ("rate(billy_consumer_lag_total[5m])", "billy_consumer_lag_total"),
        ('sum(up{job="billy"})', "up"),
        ('count({__name__="billy_nope"})', "billy_nope"),
    ],
)
def test_dashboard_check_can_fail(tmp_path: Path, bad: str, flagged: str) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panel = next(p for p in dashboard["panels"] if p.get("targets"))
    panel["targets"][0]["expr"] = bad
    copy = tmp_path / "billy.json"
    copy.write_text(json.dumps(dashboard), encoding="utf-8")
    assert dashboard_problems(copy, billy_series()) == [
        f"{panel['title']}: {flagged!r} is not a series billy exposes"
    ]


def test_dashboard_check_flags_bad_variable_and_json(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    tenant = next(v for v in dashboard["templating"]["list"] if v["name"] == "tenant")
    tenant["query"]["query"] = "label_values(billy_tenants_total, tenant)"
    copy = tmp_path / "billy.json"
    copy.write_text(json.dumps(dashboard), encoding="utf-8")
    assert dashboard_problems(copy, billy_series()) == [
        "variable tenant: 'billy_tenants_total' is not a series billy exposes"
    ]

    copy.write_text(DASHBOARD.read_text(encoding="utf-8")[:-10], encoding="utf-8")
    [problem] = dashboard_problems(copy, billy_series())
    assert problem.startswith("billy.json: not valid JSON")

    copy.write_text(json.dumps({"panels": [], "templating": {"list": []}}), encoding="utf-8")
    assert dashboard_problems(copy, billy_series()) == ["billy.json: no queries"]


def test_coverage_check_can_fail(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    dashboard["panels"] = [
        p for p in dashboard["panels"] if "billy_hold_expiries_total" not in json.dumps(p)
    ]
    copy = tmp_path / "billy.json"
    copy.write_text(json.dumps(dashboard), encoding="utf-8")
    assert dashboard_coverage_gaps(copy, billy_series()) == ["billy_hold_expiries_total"]
