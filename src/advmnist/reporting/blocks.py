"""A report as a list of blocks, rendered as markdown and as plain text so the two say the same thing.

Kinds: "h1", "h2", "p" (a paragraph), "bullets" (a list of strings), "folded" (a list of `Folded`:
one summary line each, details under it), "table" (a `Table`), "plot" (`(file name, caption)`, the
file in `plot_dir`) and "code". A third rendering is one self-contained HTML page (`advmnist report
--html`) with the plots embedded, a table of contents, and each `Folded` a `<details>` element, so
long lists cost one line each until the reader opens them (no script).
"""

from __future__ import annotations

import base64
import html
import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advmnist.errors import RunDirError
from advmnist.io import atomic_write_text, read_json
from advmnist.reporting.tables import Table, render_markdown, render_text


@dataclass(frozen=True)
class Block:
    kind: str  # "h1", "h2", "p", "bullets", "folded", "table", "plot", "code"
    content: Any


@dataclass(frozen=True)
class Folded:
    """One line a reader scans, and the details behind it (shown open when `open`)."""

    summary: str
    details: tuple[str, ...]
    open: bool = False


def _folded_lines(items: list[Folded]) -> str:
    return "\n".join(f"- {f.summary}" + "".join(f"\n  - {d}" for d in f.details) for f in items)


def render_markdown_report(blocks: list[Block], plot_dir: str = "plots/") -> str:
    out = []
    for b in blocks:
        if b.kind in ("h1", "h2"):
            out.append(("# " if b.kind == "h1" else "## ") + b.content)
        elif b.kind == "p":
            out.append(b.content)
        elif b.kind == "bullets":
            out.append("\n".join(f"- {item}" for item in b.content))
        elif b.kind == "folded":
            out.append(_folded_lines(b.content))
        elif b.kind == "table":
            out.append(render_markdown(b.content).rstrip())
        elif b.kind == "plot":
            name, caption = b.content
            out.append(f"![{caption}]({plot_dir}{name})\n\n*{plot_dir}{name}: {caption}*")
        elif b.kind == "code":
            out.append(f"```\n{b.content}\n```")
    return "\n\n".join(out) + "\n"


def render_text_report(blocks: list[Block], plot_dir: str = "plots/") -> str:
    out = []
    for b in blocks:
        if b.kind in ("h1", "h2"):
            out.append(b.content + "\n" + ("=" if b.kind == "h1" else "-") * len(b.content))
        elif b.kind == "p":
            out.append(textwrap.fill(b.content, width=100))
        elif b.kind == "bullets":
            out.append("\n".join(f"- {item}" for item in b.content))
        elif b.kind == "folded":
            out.append(_folded_lines(b.content))
        elif b.kind == "table":
            table: Table = b.content
            out.append(render_text(table).rstrip())
        elif b.kind == "plot":
            name, caption = b.content
            out.append(textwrap.fill(f"{plot_dir}{name}: {caption}", width=100, subsequent_indent="  "))
        elif b.kind == "code":
            out.append(textwrap.indent(b.content, "    "))
    return "\n\n".join(out) + "\n"


_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"  # nothing is fetched, nothing runs
# The widest an image is shown, in CSS px: the page's content width. Plots are drawn so that their
# smallest text is still >= 10 px when a figure wider than this is scaled down to it.
IMAGE_MAX_WIDTH_PX = 1152
TOC_MIN_SECTIONS = 3  # a page of one or two sections needs no table of contents
_CSS = f"""
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: {IMAGE_MAX_WIDTH_PX}px; margin: 2rem auto; padding: 0 1rem;
  color: #222; }}
h1 {{ font-size: 1.6rem; }} h2 {{ font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }}
table {{ border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }}
th, td {{ padding: 0.2rem 0.6rem; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }}
th:first-child, td:first-child {{ text-align: left; }}
caption {{ text-align: left; font-weight: 600; padding: 0.3rem 0; }}
.note, figcaption {{ color: #555; font-size: 0.85rem; }}
figure {{ margin: 1rem 0; }}
img {{ max-width: 100%; height: auto; box-sizing: border-box; border: 1px solid #eee; }}
pre {{ background: #f6f6f6; padding: 0.6rem; overflow-x: auto; font-size: 0.85rem; }}
nav.toc {{ background: #f6f6f6; padding: 0.4rem 1rem; }} nav.toc ol {{ margin: 0.2rem 0; columns: 2; }}
@media (max-width: 600px) {{ nav.toc ol {{ columns: 1; }} }}
details.folded {{ margin: 0.15rem 0; }} details.folded ul {{ margin: 0.2rem 0 0.5rem; }}
details.folded summary {{ cursor: pointer; }} .flagged {{ color: #b00; font-weight: 600; }}
"""


def _slug(text: str, taken: set[str]) -> str:
    """A unique, readable id for a heading ("The defense" -> "the-defense")."""
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, k = base, 2
    while slug in taken:
        slug, k = f"{base}-{k}", k + 1
    taken.add(slug)
    return slug


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    return f"<table><caption>{html.escape(table.title)}</caption><tr>{head}</tr>{body}</table>{note}"


def _data_uri(path: Path) -> str:
    if not path.is_file():
        raise RunDirError(f"{path}: missing; rebuild the report (it draws the plots) before --html")
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _html_folded(items: list[Folded]) -> str:
    out = []
    for f in items:
        details = "".join(f"<li>{html.escape(d)}</li>" for d in f.details)
        cls = ' class="flagged"' if f.open else ""
        out.append(
            f'<details class="folded"{" open" if f.open else ""}><summary{cls}>{html.escape(f.summary)}</summary>'
            f"<ul>{details}</ul></details>"
        )
    return "".join(out)


def _html_block(b: Block, folder: Path, plot_dir: str, ids: dict[int, str]) -> str:
    if b.kind == "h1":
        return f"<h1>{html.escape(b.content)}</h1>"
    if b.kind == "h2":
        return f'<h2 id="{ids[id(b)]}">{html.escape(b.content)}</h2>'
    if b.kind == "p":
        return f"<p>{html.escape(b.content)}</p>"
    if b.kind == "bullets":
        return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in b.content) + "</ul>"
    if b.kind == "folded":
        return _html_folded(b.content)
    if b.kind == "table":
        return _html_table(b.content)
    if b.kind == "plot":
        name, caption = b.content
        src = _data_uri(folder / f"{plot_dir}{name}")
        alt = html.escape(caption, quote=True)
        return f'<figure><img src="{src}" alt="{alt}"><figcaption>{html.escape(caption)}</figcaption></figure>'
    if b.kind == "code":
        return f"<pre>{html.escape(b.content)}</pre>"
    raise ValueError(f"unknown block kind {b.kind!r}")


def _toc(blocks: list[Block], ids: dict[int, str], extra: list[tuple[str, str]]) -> str:
    links = [(ids[id(b)], b.content) for b in blocks if b.kind == "h2"] + extra
    items = "".join(f'<li><a href="#{slug}">{html.escape(text)}</a></li>' for slug, text in links)
    return f'<nav class="toc" aria-label="Contents"><strong>Contents</strong><ol>{items}</ol></nav>'


def render_html_report(
    blocks: list[Block], folder: Path, plot_dir: str = "plots/", appendix: dict[str, Any] | None = None
) -> str:
    """One self-contained HTML page: plots embedded as data URIs, no script, nothing fetched.

    A table of contents links every section (on a page of three or more); `appendix` (title ->
    JSON-able object, e.g. the run's config and manifest) is shown folded at the end.
    """
    title = next((b.content for b in blocks if b.kind == "h1"), "advmnist report")
    taken: set[str] = {"contents", "run-files"}
    ids = {id(b): _slug(b.content, taken) for b in blocks if b.kind == "h2"}
    extra = [("run-files", "Run files")] if appendix else []
    out = [_html_block(b, folder, plot_dir, ids) for b in blocks]
    if len(ids) + len(extra) >= TOC_MIN_SECTIONS:
        out.insert(1 if blocks and blocks[0].kind == "h1" else 0, _toc(blocks, ids, extra))
    if appendix:
        out.append('<h2 id="run-files">Run files</h2>')
    for name, obj in (appendix or {}).items():
        text = html.escape(json.dumps(obj, indent=2, sort_keys=True))
        out.append(f"<details><summary>{html.escape(name)}</summary><pre>{text}</pre></details>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(out)
        + "\n</body></html>\n"
    )


def write_reports(blocks: list[Block], folder: Path, *, plot_dir: str = "plots/", as_html: bool = False) -> list[Path]:
    """report.md and report.txt in `folder`; with `html`, also report.html (config + manifest appended)."""
    written = [
        atomic_write_text(folder / "report.md", render_markdown_report(blocks, plot_dir)),
        atomic_write_text(folder / "report.txt", render_text_report(blocks, plot_dir)),
    ]
    if as_html:
        appendix = {
            name: read_json(folder / name) for name in ("config.json", "manifest.json") if (folder / name).is_file()
        }
        page = render_html_report(blocks, folder, plot_dir, appendix)
        written.append(atomic_write_text(folder / "report.html", page))
    return written
