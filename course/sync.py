"""The static `%%writefile` sync check of DESIGN §4.

Reads every notebook under `notebooks/` as JSON (no kernel), collects the cells that start
with `%%writefile`, and compares what each would write with the committed file. It reports:

- drift: a committed file that differs from the cell that writes it;
- missing: a cell whose target is not committed;
- unowned: a file in `going_modular/` that no notebook writes;
- appends: `%%writefile -a` (re-running the cell would grow the file);
- double owners: one file written by two cells.

Run it with `python -m course sync`; `tests/test_sync.py` runs it on the repository.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class WriteCell:
    notebook: Path
    cell_index: int
    target: Path
    body: str
    append: bool


def written_text(cell_body: str) -> str:
    """What IPython's %%writefile writes for a cell body: the body, ending in one newline."""
    return cell_body if cell_body.endswith("\n") else cell_body + "\n"


def writefile_cells(notebook: Path) -> list[WriteCell]:
    """Every `%%writefile` cell of one notebook, with its target resolved from the notebook's folder."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    cells = []
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        first, _, body = source.partition("\n")
        if not first.startswith("%%writefile"):
            continue
        args = shlex.split(first)[1:]
        append = "-a" in args or "--append" in args
        paths = [a for a in args if not a.startswith("-")]
        if len(paths) != 1:
            raise ValueError(f"{notebook} cell {index}: cannot read a target path from {first!r}")
        target = (notebook.parent / paths[0]).resolve()
        cells.append(WriteCell(notebook, index, target, written_text(body), append))
    return cells


def check_sync(root: Path = REPO_ROOT, package: str = "going_modular") -> list[str]:
    """Return a list of problems (empty when notebooks and committed files agree)."""
    root = root.resolve()
    problems: list[str] = []
    owners: dict[Path, WriteCell] = {}

    def rel(path: Path) -> str:
        try:
            return str(path.relative_to(root))
        except ValueError:
            return str(path)

    for notebook in sorted((root / "notebooks").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in notebook.parts:
            continue
        for cell in writefile_cells(notebook):
            where = f"{rel(notebook)} cell {cell.cell_index}"
            if cell.append:
                problems.append(
                    f"{where}: '%%writefile -a' appends on every re-run; write the whole file "
                    "with one plain %%writefile cell"
                )
                continue
            if cell.target in owners:
                first = owners[cell.target]
                problems.append(
                    f"{rel(cell.target)}: written by {rel(first.notebook)} cell {first.cell_index} "
                    f"and by {where}; exactly one cell may own a file"
                )
                continue
            owners[cell.target] = cell
            if not cell.target.exists():
                problems.append(f"{where}: writes {rel(cell.target)}, which is not committed; run the cell")
            elif cell.target.read_text(encoding="utf-8") != cell.body:
                problems.append(
                    f"{rel(cell.target)}: differs from {where}; edit the notebook and re-run the cell"
                )

    package_dir = root / package
    for path in sorted(package_dir.rglob("*.py")) if package_dir.is_dir() else []:
        if "__pycache__" in path.parts:
            continue
        if path.resolve() not in owners:
            problems.append(f"{rel(path)}: no notebook writes this file (DESIGN §4)")
    return problems


def main() -> int:
    problems = check_sync()
    for problem in problems:
        print(problem)
    print("sync check:", "OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0
