"""The plot checker's DOM reading: a plot counts as drawn only when a mark has geometry."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_plots.py"
spec = importlib.util.spec_from_file_location("check_plots", SCRIPT)
check_plots = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_plots)

DOM = """<html><head><meta charset="utf-8"></head><body>
<div id="drawn"><svg class="marks"><g class="role-axis"><path d="M0,0L10,0"></path></g>
  <g class="mark-line role-mark"><path d="M0,5L3,2L9,1"></path></g></svg></div>
<div id="axes_only"><svg class="marks"><g class="role-axis"><path d="M0,0L1,1"></path>
  <text>0.5</text></g><g class="mark-line role-mark"><path d="M NaN,NaN"></path></g></svg></div>
<div id="bars"><svg><g class="mark-rect role-mark"><path d="M1,1h5v5h-5Z"/><path d="M2,2h1v1Z"/>
  </g></svg><br><img src="x.png"></div>
<div id="never_embedded"></div>
</body></html>"""


def test_counts_marks_with_geometry_per_plot() -> None:
    counter = check_plots.MarkCounter(["drawn", "axes_only", "bars", "never_embedded"])
    counter.feed(DOM)
    assert counter.marks == {"drawn": 1, "axes_only": 0, "bars": 2, "never_embedded": 0}
