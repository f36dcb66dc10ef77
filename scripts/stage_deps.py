"""The code each DVC stage runs, derived from its imports, against the deps dvc.yaml lists.

    python scripts/stage_deps.py            # per stage: what dvc.yaml misses or lists in vain
    python scripts/stage_deps.py --print    # per stage: the derived list, to paste into deps

A stage's code is its script plus the import closure of that script inside ``query_predictor/``:
every module it imports, at the top of a file or inside a function, and the ``__init__.py`` of
every package on the way (Python runs them on import). A compiled module counts by its
``.pyx`` source. ``tests/code/test_dvc_deps.py`` fails when dvc.yaml and this disagree, so DVC
cannot call an output up to date after a change to code the stage ran.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "query_predictor"


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The source of ``module`` (a dotted name inside the package), or None."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py", base.with_suffix(".pyx")):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Dotted names ``path`` imports anywhere in its body, relative imports resolved; for
    ``from a import b`` both ``a`` and ``a.b`` (``b`` may be a submodule)."""
    if path.suffix != ".py":  # Cython source: only its own C-level code, no package imports
        return set()
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    inside = path.is_relative_to(root / PACKAGE)
    package = _module_name(path, root) if inside else ""
    if inside and not is_package:
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def closure(script: Path, root: Path = ROOT) -> set[Path]:
    """``script`` and every package file it runs on import, transitively."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imported_modules(path, root):
            parts = module.split(".")
            for i in range(1, len(parts) + 1):  # the packages on the way run first
                found = module_file(".".join(parts[:i]), root)
                if found is not None and found not in seen:
                    todo.append(found)
    return seen


def stage_scripts(dvc_yaml: Path = ROOT / "dvc.yaml") -> dict[str, Path]:
    """Each stage's Python script, from its ``cmd`` (``python <script> ...``)."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    scripts = {}
    for name, stage in stages.items():
        words = str(stage["cmd"]).split()
        scripts[name] = ROOT / next(w for w in words if w.endswith(".py"))
    return scripts


def code_deps(stage: str, dvc_yaml: Path = ROOT / "dvc.yaml") -> set[str]:
    """The deps of ``stage`` that are code: the script and paths inside the package."""
    deps = yaml.safe_load(dvc_yaml.read_text())["stages"][stage].get("deps", [])
    return {d for d in map(str, deps) if d.startswith((PACKAGE, "stages/"))}


def covered(path: str, deps: set[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def differences(dvc_yaml: Path = ROOT / "dvc.yaml") -> dict[str, dict[str, list[str]]]:
    """Per stage, the code files dvc.yaml ``missing`` and the code deps it lists ``unused``."""
    out = {}
    for stage, script in stage_scripts(dvc_yaml).items():
        needed = {str(p.relative_to(ROOT)) for p in closure(script)}
        deps = code_deps(stage, dvc_yaml)
        missing = sorted(p for p in needed if not covered(p, deps))
        unused = sorted(d for d in deps if not any(covered(p, {d}) for p in needed))
        if missing or unused:
            out[stage] = {"missing": missing, "unused": unused}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print each stage's code deps")
    args = parser.parse_args(argv)
    if args.print:
        for stage, script in stage_scripts().items():
            print(f"{stage}:")
            for path in sorted(str(p.relative_to(ROOT)) for p in closure(script)):
                print(f"  - {path}")
        return 0
    problems = differences()
    for stage, found in problems.items():
        for kind, paths in found.items():
            for path in paths:
                print(f"{stage}: {kind} {path}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
