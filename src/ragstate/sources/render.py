"""Table-mapping reports as text for people (JSON is ``MappingReport.to_dict``)."""

from __future__ import annotations

import yaml

from ragstate.sources.table import ColumnReport, MappingReport

_STATE = {
    "current": "View {view} exists and matches this mapping.",
    "missing": "View {view} does not exist yet.",
    "differs": "View {view} was made from another mapping.",
}


def render_mapping(report: MappingReport, *, dry_run: bool = False) -> str:
    lines = [f"Mapping '{report.name}': table {report.table} → view {report.view}"]
    lines += _columns("Direct (already text)", report.direct)
    lines += _columns("Converted to text", report.conversions, types=True)
    lines += _columns("Missing", report.missing)
    if report.missing and report.table_columns:
        lines.append(f"  The table's columns: {', '.join(report.table_columns)}")
    filters = list(report.spec.get("where", []))
    if filters:
        shown = [f"{f['column']} {f.get('op', '=')}" + (f" {f['value']!r}" if "value" in f else "") for f in filters]
        lines.append("  Filters (values bound, never SQL): " + "; ".join(shown))
    if report.rows is not None:
        kept = f"{report.rows} rows" + (" kept by the filters" if filters else "")
        if not report.null_ids and not report.duplicate_ids:
            lines.append(f"  {kept}; every id present and unique")
        else:
            lines.append(f"  {kept}; {report.null_ids} without an id, {report.duplicate_ids} repeating an id")
    lines += [f"  Note: {n}" for n in report.notes]
    if report.problems:
        lines.append("Not compatible; nothing was created:")
        lines += [f"  - {p}" for p in report.problems]
        return "\n".join(lines)
    if report.created:
        lines.append(f"Compatible. Created view {report.view} and recorded the mapping.")
    else:
        lines.append("Compatible. " + _STATE[report.view_state].format(view=report.view))
        if dry_run and report.view_state != "current":
            lines.append("Dry run: nothing was created.")
    spec = yaml.safe_dump({"source": report.spec}, sort_keys=False, default_flow_style=None).rstrip()
    lines.append("In the spec:\n" + "\n".join("  " + line for line in spec.splitlines()))
    return "\n".join(lines)


def _columns(label: str, columns: list[ColumnReport], *, types: bool = False) -> list[str]:
    if not columns:
        return []
    parts = [f"{c.column} (source.{c.field}{', ' + c.sql_type if types and c.sql_type else ''})" for c in columns]
    return [f"  {label}: " + ", ".join(parts)]
