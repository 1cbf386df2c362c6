"""HTML building blocks of the report: escaped text and tables, inline PNG thumbnails, Plotly divs, the CSS.

Every piece of user text goes through `escape`; thumbnails are PNG data URIs enlarged by whole pixels;
figures are divs drawn by the one Plotly.js the document carries in its head.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from fer_core.views import image_tiles

if TYPE_CHECKING:
    import plotly.graph_objects as go

PLOTLY_CONFIG = {"displayModeBar": False, "responsive": True}


def escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def count_text(value: int | None) -> str:
    return "—" if value is None else f"{int(value):,}"


def percent_text(value: float | None, digits: int = 1) -> str:
    return "—" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}%}"


def png_data_uri(image: np.ndarray, factor: int = image_tiles.UPSCALE_FACTOR) -> str:
    """A grayscale image as an inline PNG, enlarged by whole pixels so it stays crisp in any viewer and in print."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image_tiles.upscale(np.asarray(image, dtype=np.uint8), factor)).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnail(image: np.ndarray, caption_lines: Sequence[str], factor: int, marked: bool = False) -> str:
    """One image with a short caption under it (caption lines are escaped here)."""
    side = image.shape[0] * factor
    caption = "<br>".join(escape(line) for line in caption_lines)
    alt = escape(" · ".join(caption_lines))
    return (f'<figure class="thumb{" marked" if marked else ""}"><img src="{png_data_uri(image, factor)}" '
            f'width="{side}" height="{side}" alt="{alt}"><figcaption>{caption}</figcaption></figure>')


def figure_html(figure: "go.Figure") -> str:
    """A Plotly figure as a div drawn by the Plotly.js in the head; WebGL traces become SVG so they print."""
    return f'<div class="plot">{svg_traces(figure).to_html(include_plotlyjs=False, full_html=False, config=PLOTLY_CONFIG)}</div>'


def svg_traces(figure: "go.Figure") -> "go.Figure":
    """The same figure with every `scattergl` trace drawn as an SVG `scatter` (WebGL neither prints nor
    draws in browsers without a GPU context; the report shows a few hundred points at most)."""
    import plotly.graph_objects as go

    if not any(trace.type == "scattergl" for trace in figure.data):
        return figure
    traces = []
    for trace in figure.data:
        if trace.type == "scattergl":
            properties = trace.to_plotly_json()
            properties.pop("type")
            traces.append(go.Scatter(**properties))
        else:
            traces.append(trace)
    return go.Figure(data=traces, layout=figure.layout)


def html_table(frame: pd.DataFrame, formats: dict[str, Any] | None = None, numeric: Sequence[str] = ()) -> str:
    """A DataFrame as an escaped HTML table; `formats` maps a column to a function of its value."""
    formats = formats or {}
    head = "".join(f'<th{" class=num" if column in numeric else ""}>{escape(column)}</th>' for column in frame.columns)
    body = []
    for _, row in frame.iterrows():
        cells = []
        for column in frame.columns:
            value = row[column]
            text = formats[column](value) if column in formats else ("—" if is_missing(value) else value)
            cells.append(f'<td{" class=num" if column in numeric else ""}>{escape(text)}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def section(section_id: str, title: str, body: str) -> str:
    return f'<section id="{section_id}"><h2>{escape(title)}</h2>{body}</section>'


def paragraph(text: str) -> str:
    """A paragraph of text written by this module (already escaped where it holds user text)."""
    return f"<p>{text}</p>"


REPORT_CSS = """
:root { color-scheme: light; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --accent: #4C78A8; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f8fa; color: var(--ink);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1000px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 21px; margin: 36px 0 12px; padding-bottom: 4px; border-bottom: 2px solid var(--accent); }
h3 { font-size: 16px; margin: 24px 0 8px; }
p { margin: 6px 0 10px; }
.meta { color: var(--muted); font-size: 13px; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12.5px; }
pre { background: #f6f8fa; border: 1px solid var(--line); padding: 10px 12px; white-space: pre-wrap;
      overflow-wrap: anywhere; }
nav ol { display: flex; flex-wrap: wrap; gap: 4px 18px; padding: 0; margin: 10px 0 0; list-style: none; }
nav ol li { counter-increment: section; }
nav a { color: var(--accent); text-decoration: none; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(290px, 1fr)); gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; break-inside: avoid; }
.card .label { font-size: 13px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 28px; font-weight: 650; }
.card .detail { font-size: 13px; }
.card .why { font-size: 13.5px; margin: 6px 0; }
.card .after { font-size: 13px; color: var(--muted); }
.thumbs { display: flex; flex-wrap: wrap; gap: 8px; }
.thumb { margin: 0; width: 144px; break-inside: avoid; }
.thumb img { display: block; image-rendering: pixelated; border: 1px solid var(--line); }
.thumb figcaption { font-size: 11.5px; line-height: 1.3; color: var(--muted); margin-top: 2px; overflow-wrap: anywhere; }
.example { margin: 8px 0 14px; break-inside: avoid; }
.pairs { display: flex; flex-wrap: wrap; gap: 10px 28px; }
.pair .thumbs { flex-wrap: nowrap; }
.caption { font-size: 13px; margin: 2px 0 6px; }
.warning { border-left: 4px solid #c77700; background: #fff6e5; padding: 6px 10px; margin: 8px 0; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px; break-inside: avoid; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.facts th { width: 230px; font-weight: 600; }
table.facts td { overflow-wrap: anywhere; }
.plot { break-inside: avoid; margin: 6px 0 12px; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; align-items: start; }
@page { size: A4; margin: 12mm; }
@media print {
  body { background: #fff; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  main { max-width: none; padding: 0; zoom: 0.72; }
  nav { display: none; }
  section { break-before: page; }
  section#headline { break-before: auto; }
  h2, h3 { break-after: avoid; }
  a { color: inherit; }
}
"""
