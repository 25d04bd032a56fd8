"""A report as blocks (heading, paragraph, code, list, image, table) rendered to Markdown and to one
self-contained HTML page (images embedded as base64, so the one file can be mailed or attached to CI)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

Block = tuple[str, Any]


def markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for kind, v in blocks:
        if kind == "h1":
            out += [f"# {v}", ""]
        elif kind == "h2":
            out += [f"## {v}", ""]
        elif kind == "p":
            out += [str(v), ""]
        elif kind == "code":
            out += ["```", str(v), "```", ""]
        elif kind == "list":
            out += [f"- {x}" for x in v] + [""]
        elif kind == "img":
            out += [f"![{v[1]}]({v[0]})", ""]
        elif kind == "table":
            head, rows = v
            out.append("| " + " | ".join(head) + " |")
            out.append("|" + "---|" * len(head))
            out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
            out.append("")
    return "\n".join(out)


def page(blocks: list[Block], folder: Path) -> str:
    e = html.escape
    body: list[str] = []
    for kind, v in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{e(str(v))}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{e(str(v))}</p>")
        elif kind == "code":
            body.append(f"<pre>{e(str(v))}</pre>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{e(x)}</li>" for x in v) + "</ul>")
        elif kind == "img":
            data = base64.b64encode((folder / v[0]).read_bytes()).decode()
            body.append(f'<figure><img alt="{e(v[1])}" src="data:image/png;base64,{data}"/>'
                        f"<figcaption>{e(v[1])}</figcaption></figure>")
        elif kind == "table":
            head, rows = v
            body.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"
                        + "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
                        + "</table>")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;}table{border-collapse:collapse;"
             "font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}"
             "pre{background:#f4f4f4;padding:6px;white-space:pre-wrap}")
    title = next((str(v) for k, v in blocks if k == "h1"), "report")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{style}</style>"
            f"</head><body>{''.join(body)}</body></html>\n")
