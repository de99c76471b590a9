"""Re-run lessons headlessly.

    python -m course run [--only 00,03] [--device auto|cpu|cuda] [--data offline|real] [--output executed]
    python -m course refresh [--only 00] [--all]      # maintainers: re-execute in place

`run` executes lesson notebooks with papermill, each with its own folder as the working
directory, and writes executed copies to an output folder; the sources are never modified.
It ends with a table (notebook, status, seconds, peak memory) and exits 1 if any lesson failed,
naming the failing cell.

`refresh` re-executes notebooks in place, which is how the committed outputs that nbval
compares against are made. The kernel runs as a learner's own default run would: no COURSE_*
variable is set (the parameters cell's DEVICE = "auto", DATA = "offline", SEED = 42 are what the
stored setup output reports), and GPUs are hidden (CUDA_VISIBLE_DEVICES="") so "auto" resolves
to the CPU. Exercise notebooks are executed with errors allowed, because their unanswered check
cells raise on purpose; a lesson or solution notebook that raises is left untouched and fails.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from course import DATA_CHOICES, DEVICE_CHOICES
from course.sync import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"
LESSON_BUDGET_S = 180  # DESIGN §7: every lesson notebook within 3 minutes on a 2-core CPU
COURSE_BUDGET_S = 15 * 60


@dataclass
class Result:
    notebook: str
    status: str
    seconds: float
    peak_mib: float
    detail: str = ""


class PeakMemory:
    """Samples the summed RSS of this process's children (the kernel and its workers)."""

    def __init__(self, interval: float = 0.1):
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def lesson_notebooks(only: str | None = None, root: Path = NOTEBOOKS) -> list[Path]:
    """The numbered lesson notebooks, optionally filtered by `--only 00,03` prefixes."""
    lessons = sorted(p for p in root.glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return lessons
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    chosen = []
    for prefix in wanted:
        matches = [p for p in lessons if p.name.startswith(prefix.zfill(2) + "_")]
        if not matches:
            known = ", ".join(p.name[:2] for p in lessons)
            raise SystemExit(f"--only: no lesson numbered {prefix!r}; lessons here are {known}")
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def describe_failure(error: Exception) -> str:
    """One line naming the failing cell, from papermill's execution error."""
    index = getattr(error, "cell_index", None)
    count = getattr(error, "exec_count", None)
    source = (getattr(error, "source", "") or "").strip().splitlines()
    first_line = source[0] if source else ""
    ename, evalue = getattr(error, "ename", type(error).__name__), getattr(error, "evalue", str(error))
    if index is None:
        return f"{ename}: {evalue}"
    return f"cell {index} (In [{count}]: {first_line[:60]!r}) raised {ename}: {evalue}"


def set_kernel_environment(device: str, data: str) -> None:
    """Kernels inherit this process's environment: make COURSE_* agree with the parameters."""
    os.environ["COURSE_DEVICE"] = device
    os.environ["COURSE_DATA"] = data
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")


def run_lessons(notebooks: list[Path], device: str, data: str, output: Path) -> list[Result]:
    import papermill

    set_kernel_environment(device, data)
    output.mkdir(parents=True, exist_ok=True)
    results = []
    for number, notebook in enumerate(notebooks, 1):
        print(f"[{number}/{len(notebooks)}] {notebook.name}  (device={device}, data={data})", flush=True)
        start = time.perf_counter()
        status, detail = "ok", ""
        with PeakMemory() as memory:
            try:
                papermill.execute_notebook(
                    str(notebook),
                    str(output / notebook.name),
                    parameters={"DEVICE": device, "DATA": data},
                    cwd=str(notebook.parent),
                    kernel_name="python3",
                    progress_bar=True,
                    report_mode=False,
                )
            except Exception as error:  # papermill's PapermillExecutionError, or a kernel death
                status, detail = "FAILED", describe_failure(error)
        seconds = time.perf_counter() - start
        results.append(Result(notebook.name, status, seconds, memory.peak / 2**20, detail))
        if detail:
            print(f"    {notebook.name}: {detail}", flush=True)
    return results


def print_summary(results: list[Result], output: Path) -> None:
    width = max([len(r.notebook) for r in results] + [8])
    print()
    print(f"{'notebook':<{width}}  {'status':<6}  {'seconds':>7}  {'peak MiB':>8}  budget")
    for r in results:
        budget = "ok" if r.seconds <= LESSON_BUDGET_S else f"over {LESSON_BUDGET_S}s"
        print(f"{r.notebook:<{width}}  {r.status:<6}  {r.seconds:7.1f}  {r.peak_mib:8.0f}  {budget}")
    total = sum(r.seconds for r in results)
    print(f"{'total':<{width}}  {'':<6}  {total:7.1f}  {max(r.peak_mib for r in results):8.0f}  "
          f"{'ok' if total <= COURSE_BUDGET_S else f'over {COURSE_BUDGET_S}s'}")
    print(f"executed copies: {output}")
    for r in results:
        if r.status != "ok":
            print(f"FAILED {r.notebook}: {r.detail}")


PARAMETER_VARIABLES = ("COURSE_DEVICE", "COURSE_DATA", "COURSE_SEED")


def refresh_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The kernel environment for `refresh`: a learner's default run, with GPUs hidden.

    The COURSE_* parameter variables are removed, so `course.setup` reports every value as
    coming "from parameters cell", as it does for a learner who sets nothing. The default
    DEVICE = "auto" is pinned to the CPU by hiding every GPU (CUDA_VISIBLE_DEVICES=""), so
    the stored outputs are CPU outputs even on a machine that has a GPU.
    """
    env = {key: value for key, value in base.items() if key not in PARAMETER_VARIABLES}
    env["CUDA_VISIBLE_DEVICES"] = ""
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return env


def is_exercise(notebook: Path) -> bool:
    """Exercise notebooks live in notebooks/exercises/ and raise on purpose when unanswered."""
    return notebook.parent.name == "exercises"


def refresh(notebooks: list[Path]) -> int:
    """Re-execute notebooks in place to refresh their stored outputs (see the module docstring).

    Args:
        notebooks: the notebooks to execute. Exercise notebooks (see `is_exercise`) run with
            errors allowed; any other notebook that raises is left exactly as it was.

    Returns:
        0 if every notebook was refreshed, 1 if any failed.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    env = refresh_environment(os.environ)
    failures = 0
    for notebook in notebooks:
        start = time.perf_counter()
        nb = nbformat.read(notebook, as_version=4)
        client = NotebookClient(
            nb,
            timeout=900,
            kernel_name="python3",
            record_timing=False,
            allow_errors=is_exercise(notebook),
            resources={"metadata": {"path": str(notebook.parent)}},
        )
        where = notebook.relative_to(REPO_ROOT) if notebook.is_relative_to(REPO_ROOT) else notebook
        try:
            client.execute(env=env)
        except CellExecutionError as error:
            failures += 1
            last_line = re.sub(r"\x1b\[[0-9;]*m", "", str(error).strip().splitlines()[-1])  # no ANSI colours
            print(f"FAILED {where}: {last_line}")
            continue  # the source notebook is left exactly as it was
        handle, tmp = tempfile.mkstemp(suffix=".ipynb", dir=notebook.parent)
        os.close(handle)
        nbformat.write(nb, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a notebook is readable like any other file
        os.replace(tmp, notebook)
        print(f"refreshed {where} in {time.perf_counter() - start:.1f}s", flush=True)
    return 1 if failures else 0


def all_notebooks(only: str | None) -> list[Path]:
    """Lessons, then exercises and solutions, for `refresh --all`."""
    extra = sorted((NOTEBOOKS / "exercises").glob("*.ipynb")) + sorted((NOTEBOOKS / "solutions").glob("*.ipynb"))
    if only:
        prefixes = tuple(w.strip().zfill(2) + "_" for w in only.split(","))
        extra = [p for p in extra if p.name.startswith(prefixes)]
    return lesson_notebooks(only) + extra


def build_parser() -> argparse.ArgumentParser:
    """The `python -m course` parser: one subparser per command (add new ones here)."""
    parser = argparse.ArgumentParser(
        prog="python -m course",
        description="Run the course's notebooks headlessly.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute lessons with papermill into an output folder",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    run.add_argument("--only", help="comma-separated lesson numbers, e.g. 00,03")
    run.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="where lessons compute")
    run.add_argument("--data", choices=DATA_CHOICES, default="offline",
                     help="offline: embedded stand-ins; real: original datasets and weights")
    run.add_argument("--output", type=Path, default=REPO_ROOT / "executed", help="folder for executed copies")
    run.set_defaults(handler=command_run)

    ref = sub.add_parser("refresh", help="maintainers: re-execute notebooks in place (default run, CPU)",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ref.add_argument("--only", help="comma-separated lesson numbers, e.g. 00,03")
    ref.add_argument("--all", action="store_true", help="also exercises and solutions")
    ref.set_defaults(handler=command_refresh)

    sync = sub.add_parser("sync", help="check that going_modular matches the notebooks' %%%%writefile cells")
    sync.set_defaults(handler=command_sync)

    from course.fetch import add_parser as add_fetch
    add_fetch(sub)
    from course.site import add_parser as add_site
    add_site(sub)
    return parser


def command_run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    notebooks = lesson_notebooks(args.only)
    if not notebooks:
        parser.error(f"no lesson notebooks found in {NOTEBOOKS}")
    output = args.output.resolve()
    if output == NOTEBOOKS.resolve():
        parser.error("--output must not be the notebooks folder: `run` never modifies the sources")
    results = run_lessons(notebooks, args.device, args.data, output)
    print_summary(results, output)
    return 0 if all(r.status == "ok" for r in results) else 1


def command_refresh(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    return refresh(all_notebooks(args.only) if args.all else lesson_notebooks(args.only))


def command_sync(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from course.sync import main as sync_main
    return sync_main()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.handler(args, parser)


if __name__ == "__main__":
    sys.exit(main())
