"""Small HTML building blocks for the self-contained report (no external assets, no network).

Every piece of text goes through :func:`esc`; images are embedded as base64 ``data:`` URIs; the
one script only marks on ``<body>`` whether every image decoded (``data-images="ok"``), which
the browser test reads.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["CSS", "SCRIPT", "esc", "img_tag", "table"]

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0 auto;
max-width:1400px;padding:1.5em 2em;color:#1b1f23;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:2px solid #d0d7de;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.5em}.meta{color:#57606a;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.82em}
.scroll{overflow-x:auto;max-width:100%}
th,td{border:1px solid #d0d7de;padding:.3em .55em;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.primary td{background:#f3f9ff}td.best{font-weight:700}
.better{color:#116329;font-weight:600}.worse{color:#a40e26;font-weight:600}
.unclear{color:#7d4e00}td.better,td.worse,td.unclear,td.met,td.notmet{white-space:nowrap}.met{color:#116329;font-weight:600}.notmet{color:#a40e26;font-weight:700}
.note{background:#fff8c5;border-left:4px solid #d4a72c;padding:.4em .8em;margin:.6em 0}
.fail{background:#ffebe9;border-left:4px solid #cf222e;padding:.4em .8em;margin:.6em 0}
figure{display:inline-block;margin:.5em 1em 1em 0;max-width:100%;vertical-align:top}
figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{font-size:.8em;color:#57606a;max-width:60em}
nav ul{columns:2;font-size:.9em}code{font-size:.9em}
"""

SCRIPT = """
(function(){
  function check(){
    var imgs=Array.prototype.slice.call(document.images);
    var broken=imgs.filter(function(i){return !(i.complete && i.naturalWidth>0);});
    broken.forEach(function(i){i.setAttribute('data-broken','true');});
    document.body.setAttribute('data-image-count', String(imgs.length));
    document.body.setAttribute('data-broken-images', String(broken.length));
    document.body.setAttribute('data-images', broken.length ? 'broken' : 'ok');
  }
  if (document.readyState === 'complete') { check(); } else { window.addEventListener('load', check); }
})();
"""


def esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def img_tag(path: Path, alt: str) -> str:
    """An ``<img>`` with the PNG embedded as a data URI."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}" loading="eager">'


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    table_id: str | None = None,
    numeric: Sequence[bool] | None = None,
    row_classes: Sequence[str] | None = None,
    cell_classes: Sequence[Sequence[str]] | None = None,
    raw: bool = False,
) -> str:
    """An HTML table; cells are escaped unless ``raw`` (cells then are trusted HTML fragments)."""
    rows = list(rows)
    numeric = numeric or [False] * len(header)
    out = [f"<table{f' id={chr(34)}{esc(table_id)}{chr(34)}' if table_id else ''}>", "<thead><tr>"]
    out += [f"<th>{esc(h)}</th>" for h in header]
    out.append("</tr></thead><tbody>")
    for i, r in enumerate(rows):
        rc = row_classes[i] if row_classes else ""
        out.append(f'<tr class="{esc(rc)}">' if rc else "<tr>")
        for j, cell in enumerate(r):
            cls = ["num"] if numeric[j] else []
            if cell_classes and cell_classes[i][j]:
                cls.append(cell_classes[i][j])
            attr = f' class="{" ".join(cls)}"' if cls else ""
            out.append(f"<td{attr}>{cell if raw else esc(cell)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return '<div class="scroll">' + "".join(out) + "</div>"
