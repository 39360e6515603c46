"""A preview as one self-contained HTML page: the picture, the seed, the config and every caption."""

from __future__ import annotations

import base64
import html
import json

from pipeline.io import png_bytes
from pipeline.preview.captions import LEGEND
from pipeline.preview.cells import Preview


def preview_html(p: Preview, title: str = "augpipe preview", source: str | None = None) -> str:
    """A self-contained page: the picture (embedded PNG), the seed, the config as YAML and a table of
    every cell's caption (hover a caption for its full parameters)."""
    png = base64.b64encode(png_bytes(p.picture)).decode("ascii")
    esc = html.escape
    facts = [("seed", str(p.seed)), ("samples", str(len(p.rows))), ("cells per row", str(p.layout.cols))]
    if source is not None:
        facts.insert(0, ("source", source))
    if p.sweep:
        facts.append(("sweep", f"{p.sweep}: {p.note}"))
    header = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
    body = []
    for r, row in enumerate(p.rows):
        name = f"#{p.indices[r]}" + (f" ({p.labels[r]})" if p.labels else "")
        cells = "".join(
            f'<td title="{esc(json.dumps(c.params, default=str, sort_keys=True))}">{esc(c.caption)}</td>'
            for c in row
        )
        body.append(f"<tr><th>{esc(name)}</th>{cells}</tr>")
    head = "".join(f"<th>{'original' if c == 0 else c}</th>" for c in range(p.layout.cols))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}} table{{border-collapse:collapse;margin:1em 0}}
th,td{{border:1px solid #ccc;padding:3px 6px;font-size:13px;text-align:left}}
img{{max-width:100%;image-rendering:pixelated}} pre{{background:#f6f6f6;padding:8px}}</style></head>
<body><h1>{esc(title)}</h1>
<table>{header}</table>
<img alt="augmentation preview" src="data:image/png;base64,{png}">
<h2>Captions</h2><p>{esc(LEGEND)}</p>
<table><tr><th>sample</th>{head}</tr>{"".join(body)}</table>
<h2>Config</h2><pre>{esc(p.config.to_yaml())}</pre>
</body></html>
"""
