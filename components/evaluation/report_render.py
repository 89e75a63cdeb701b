"""Rendering a report's sections to Markdown and self-contained HTML, and adding sections to a written report.

Kept apart from report.py, which draws the plots: the registry step completes the report with the gate's decision
and must not load matplotlib or the model to do it.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from components.contracts import REPORT_HTML_FILE, REPORT_MARKDOWN_FILE

# A section is (heading, header row, body rows): built once, rendered to both Markdown and HTML.
Section = tuple[str, list[str], list[list[str]]]
_MD_FIGURES, _HTML_FIGURES = "## Figures\n", "<h2>Figures</h2>"


def render_markdown(title: str, sections: list[Section], figures: list[tuple[str, Path]]) -> str:
    lines = [f"# {title}", "", _markdown_sections(sections) + _MD_FIGURES]
    lines += [f"![{caption}]({path.name})" for caption, path in figures] + [""]
    return "\n".join(lines)


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "table{border-collapse:collapse;margin-bottom:1.5rem}"
    "th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}"
    "th{background:#f2f4f7}img{max-width:100%;display:block;margin-bottom:1.5rem}"
)


def render_html(title: str, sections: list[Section], figures: list[tuple[str, Path]]) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
        _html_sections(sections),
        _HTML_FIGURES,
    ]
    for caption, path in figures:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(
            f"<h3>{html.escape(caption)}</h3><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
        )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def insert_sections(report_dir: Path, sections: list[Section]) -> None:
    """Add `sections` to a written report's Markdown and HTML, before its figures: for what is decided after the
    evaluation (the registry's gate), so the report a reader opens holds the decision too."""
    for name, marker, rendered in (
        (REPORT_MARKDOWN_FILE, _MD_FIGURES, _markdown_sections(sections)),
        (REPORT_HTML_FILE, _HTML_FIGURES, _html_sections(sections) + "\n"),
    ):
        path = Path(report_dir) / name
        text = path.read_text(encoding="utf-8")
        if marker not in text:
            raise ValueError(f"{path} has no '{marker.strip()}' heading: it was not written by write_report")
        path.write_text(text.replace(marker, rendered + marker, 1), encoding="utf-8")


def _markdown_sections(sections: list[Section]) -> str:
    lines = []
    for heading, header, rows in sections:
        lines += [f"## {heading}", "", _md_row(header), _md_row(["---"] * len(header))]
        lines += [_md_row(row) for row in rows] + [""]
    return "".join(line + "\n" for line in lines)


def _md_row(cells: list[str]) -> str:
    # A pipe or newline inside model output would otherwise break the table.
    escaped = [cell.replace("|", "\\|").replace("\n", " ") for cell in cells]
    return "| " + " | ".join(escaped) + " |"


def _html_sections(sections: list[Section]) -> str:
    parts = []
    for heading, header, rows in sections:
        parts.append(
            f"<h2>{html.escape(heading)}</h2><table><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in header)
            + "</tr>"
        )
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>")
        parts.append("</table>")
    return "\n".join(parts)
