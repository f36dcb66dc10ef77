"""Render the pipeline's dvc plots to HTML and check in headless Chromium that every plot drew.

    python scripts/check_plots.py [--out plots-html] [--rev HEAD~1 ...] [--screenshot FILE]

Runs ``dvc plots show`` (or ``dvc plots diff REV...`` when revisions are given) with a page
template that loads Vega from ``scripts/plots/node_modules`` (``make plot-assets``) instead of
a CDN, so the page works offline. Each plot is drawn as SVG; a plot counts as drawn when its
SVG holds at least one mark with geometry (a line, bar, point or cell), not just axes. Exit
status 1 if any plot failed to draw. Chromium is found as ``$CHROMIUM``, ``chromium`` or
``chromium-browser`` (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "scripts" / "plots" / "node_modules"
BUILDS = (
    "vega/build/vega.min.js",
    "vega-lite/build/vega-lite.min.js",
    "vega-embed/build/vega-embed.min.js",
)
# dvc's page calls vegaEmbed(id, spec); drawing as SVG puts every mark into the DOM
PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>Trino Query Predictor: plots</title>
<script src="vega.min.js"></script>
<script src="vega-lite.min.js"></script>
<script src="vega-embed.min.js"></script>
<script>
  const embedWithVega = window.vegaEmbed;
  window.vegaEmbed = (el, spec, opt) =>
    embedWithVega(el, spec, Object.assign({renderer: "svg", actions: false}, opt));
</script>
<style>body { font-family: sans-serif; } table { border-spacing: 15px; }</style>
</head>
<body>
{plot_divs}
</body>
</html>
"""
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=30000",
)


def chromium() -> str:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    raise SystemExit(
        "error: no Chromium found; install it (apt-get install chromium) or set CHROMIUM"
    )


def render(repo: Path, out: Path, revisions: list[str]) -> list[str]:
    """Write the plots page into ``out``; return the ids of the plots it embeds."""
    missing = [b for b in BUILDS if not (ASSETS / b).exists()]
    if missing:
        raise SystemExit(f"error: {ASSETS / missing[0]} is missing; run `make plot-assets`")
    out.mkdir(parents=True, exist_ok=True)
    template = out / "template.html"
    template.write_text(PAGE)
    command = ["dvc", "plots", "diff", *revisions] if revisions else ["dvc", "plots", "show"]
    subprocess.run(
        [*command, "--html-template", str(template), "-o", str(out)], check=True, cwd=repo
    )
    template.unlink()
    for build in BUILDS:
        shutil.copyfile(ASSETS / build, out / Path(build).name)
    page = (out / "index.html").read_text()
    return re.findall(r"vegaEmbed\('#([^']+)'", page)


GEOMETRY = ("path", "rect", "line", "circle", "text")
# elements the parser never sees closed (HTML void elements) or that hold no marks: not stacked
LEAVES = ("path", "rect", "line", "circle", "meta", "link", "br", "img", "input")


class MarkCounter(HTMLParser):
    """Counts drawn marks (elements inside a ``role-mark`` group) under each plot's div."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__()
        self.marks = dict.fromkeys(ids, 0)
        self.stack: list[tuple[str | None, bool]] = []  # (plot id, inside a mark group)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        plot, in_mark = self.stack[-1] if self.stack else (None, False)
        if values.get("id") in self.marks:
            plot = values["id"]
        if plot and in_mark and tag in GEOMETRY and self.has_geometry(tag, values):
            self.marks[plot] += 1
        in_mark = in_mark or "role-mark" in (values.get("class") or "").split()
        if tag not in LEAVES:
            self.stack.append((plot, in_mark))

    @staticmethod
    def has_geometry(tag: str, values: dict[str, str | None]) -> bool:
        """A path must have coordinates (a line over unparsable x values has none)."""
        if tag != "path":
            return True
        d = values.get("d") or ""
        return any(c.isdigit() for c in d) and "NaN" not in d

    def handle_endtag(self, tag: str) -> None:
        if tag not in LEAVES and self.stack:
            self.stack.pop()


def browse(page: Path, screenshot: Path | None, plots: int) -> str:
    """The page's DOM after Vega ran, from headless Chromium (and a screenshot if asked)."""
    with tempfile.TemporaryDirectory() as profile:
        base = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
        dom = subprocess.run(
            [*base, "--dump-dom", page.as_uri()],
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        ).stdout
        if screenshot:
            size = f"--window-size=1400,{max(900, 420 * plots)}"
            subprocess.run(
                [*base, size, f"--screenshot={screenshot.resolve()}", page.as_uri()],
                check=True,
                capture_output=True,
                timeout=180,
            )
    return dom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="the DVC project")
    parser.add_argument("--out", type=Path, default=REPO / "plots-html")
    parser.add_argument("--rev", action="append", default=[], help="compare with a revision")
    parser.add_argument("--screenshot", type=Path, help="also save a PNG of the page")
    args = parser.parse_args()
    ids = render(args.repo, args.out.resolve(), args.rev)
    if not ids:
        raise SystemExit("error: dvc rendered no plot; run `dvc repro` first")
    counter = MarkCounter(ids)
    counter.feed(browse(args.out / "index.html", args.screenshot, len(ids)))
    width = max(map(len, ids))
    for plot, marks in counter.marks.items():
        print(f"  {plot.ljust(width)}  {'drew' if marks else 'BLANK':5}  {marks:>6} marks")
    blank = [p for p, m in counter.marks.items() if not m]
    print(f"{len(ids) - len(blank)} of {len(ids)} plots drew: {args.out / 'index.html'}")
    if args.screenshot:
        print(f"screenshot: {args.screenshot}")
    sys.exit(1 if blank else 0)


if __name__ == "__main__":
    main()
