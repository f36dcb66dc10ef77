"""dvc.yaml's deps cover the code each stage runs, derived from the stage script's imports
(scripts/stage_deps.py), so DVC cannot call an output up to date after a library change."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "stage_deps.py"
spec = importlib.util.spec_from_file_location("stage_deps", SCRIPT)
stage_deps = importlib.util.module_from_spec(spec)
assert spec.loader is not None
spec.loader.exec_module(stage_deps)

STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_every_stage_lists_exactly_the_code_it_imports() -> None:
    problems = stage_deps.differences()
    report = "; ".join(
        f"{stage} {kind}: {', '.join(paths)}"
        for stage, found in problems.items()
        for kind, paths in found.items()
        if paths
    )
    assert not problems, f"{report} (run `python scripts/stage_deps.py --print`)"


@pytest.mark.parametrize(
    ("stage", "module"),
    [  # imports that a hand-kept list once missed
        ("export", "query_predictor/training/windows.py"),
        ("export", "query_predictor/core/tfidf.py"),
        ("evaluate", "query_predictor/training/export.py"),
        ("replay", "query_predictor/training/model.py"),
        *((stage, "query_predictor/params.py") for stage in STAGES),
    ],
)
def test_the_closure_follows_indirect_imports(stage: str, module: str) -> None:
    script = stage_deps.stage_scripts()[stage]
    assert REPO / module in stage_deps.closure(script)


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_closure_of_a_small_package(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "stages/run.py": "from query_predictor.b import thing\n",
            "query_predictor/__init__.py": "",
            "query_predictor/b/__init__.py": "from . import c\n",
            "query_predictor/b/c.py": "def f():\n    from ..d import g\n    return g\n",
            "query_predictor/d.py": "import os\nfrom query_predictor import e\n",
            "query_predictor/e.py": "",
            "query_predictor/f.pyx": "",
            "query_predictor/unused.py": "",
            "query_predictor/b/thing.py": "from query_predictor import f\n",
        },
    )
    found = stage_deps.closure(tmp_path / "stages/run.py", root=tmp_path)
    names = sorted(str(p.relative_to(tmp_path)) for p in found)
    assert names == [
        "query_predictor/__init__.py",
        "query_predictor/b/__init__.py",
        "query_predictor/b/c.py",  # through the package's __init__
        "query_predictor/b/thing.py",  # `from package import submodule`
        "query_predictor/d.py",  # imported inside a function, relative
        "query_predictor/e.py",
        "query_predictor/f.pyx",  # a compiled module, by its source
        "stages/run.py",
    ]


def test_a_missing_dep_is_reported(tmp_path: Path) -> None:
    text = (REPO / "dvc.yaml").read_text()
    edited = tmp_path / "dvc.yaml"
    edited.write_text(text.replace("      - query_predictor/training/windows.py\n", "", 1))
    problems = stage_deps.differences(edited)
    assert problems and all(
        found["missing"] == ["query_predictor/training/windows.py"] for found in problems.values()
    )


def test_plot_ids_are_safe_in_the_html_dvc_writes() -> None:
    """`dvc plots show` puts a plot's id, unescaped, inside a JavaScript string: a quote in a
    title leaves that plot blank in the browser."""
    ids = [
        next(iter(p)) if isinstance(p, dict) else p
        for p in yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    ]
    unsafe = [i for i in ids if any(c in i for c in "'\"\\<>")]
    assert not unsafe, f"plot ids with quotes or brackets: {unsafe}"
