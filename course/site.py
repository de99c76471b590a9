"""`python -m course site [--serve]`: the course as a website, built offline from the committed notebooks.

    python -m course site              # build into build/site/ (git-ignored)
    python -m course site --serve      # build, then serve it on http://127.0.0.1:8000/

The site is made by Sphinx with myst-nb and sphinx-book-theme (configuration in
course/site_config/). It renders the outputs committed in the notebooks and never executes one.
Nothing is fetched at build time or when a page is viewed: the theme's fonts and scripts,
MathJax (from the `sphinx-mathjax-offline` wheel) and the search index are all local files.

The pages are staged into build/site-src/ first, each from its one source:
- index: the README's opening and its course map, with each lesson linked to its page;
- every notebook under notebooks/ (lessons, exercises, solutions, found by glob), with the pictures
  under notebooks/ that their markdown shows: a line of links
  (notebook file, exercises, solutions) is added under the title, the setup cell's version
  printout is collapsed, and ipywidgets progress bars (which need a widget manager from a CDN and
  show only "0%" without one) are dropped; nothing else changes;
- "Run the course yourself": README sections, included as they are;
- the API reference: one page per going_modular module, from its docstrings (autodoc).
A staged file is rewritten only when its content changes, so a second build is incremental.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import time
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "course" / "site_config"
BUILD = ROOT / "build"
OUT = BUILD / "site"
FILES = "_notebook_files"  # originals of the notebooks, offered for download (not pages)

# README sections that make up the "Run the course yourself" page, in this order.
RUN_SECTIONS = (
    "On a fresh machine: two commands",
    "Open the course in JupyterLab",
    "Run on CUDA",
    "Real data and weights",
    "Train from the command line",
    "Serve the FoodVision Mini app",
    "The course as a website",
)
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}


@dataclass(frozen=True)
class Lesson:
    """One lesson's notebooks, paths relative to the repository root."""

    number: str
    lesson: Path
    exercises: Path | None
    solutions: Path | None

    @property
    def title(self) -> str:
        return notebook_title(ROOT / self.lesson)


def find_lessons(root: Path = ROOT) -> list[Lesson]:
    """Every lesson notebook notebooks/NN_*.ipynb with its exercises and solutions, if present."""
    found = []
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        number = path.name[:2]
        exercises = sorted((root / "notebooks" / "exercises").glob(f"{number}_*.ipynb"))
        solutions = sorted((root / "notebooks" / "solutions").glob(f"{number}_*.ipynb"))
        found.append(Lesson(number, path.relative_to(root),
                            exercises[0].relative_to(root) if exercises else None,
                            solutions[0].relative_to(root) if solutions else None))
    if not found:
        raise FileNotFoundError(f"no lesson notebooks (NN_*.ipynb) in {root / 'notebooks'}: is this the course repository?")
    return found


def notebook_title(path: Path) -> str:
    """The text of the first `# ` heading in the notebook's markdown cells."""
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    raise ValueError(f"{path} has no '# ' title heading in a markdown cell; every notebook starts with one")


def image_outputs(path: Path) -> int:
    """How many outputs of the notebook are images (a figure stored as PNG, JPEG or SVG)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return sum(1 for cell in cells for output in cell.get("outputs", [])
               if any(mime.startswith("image/") for mime in output.get("data", {})))


# ----------------------------------------------------------------------------- README pieces


def readme_sections(text: str) -> dict[str, str]:
    """{heading: body} for each `## ` section of the README; "" holds the text before the first."""
    sections: dict[str, str] = {}
    heading, lines = "", []
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if line.startswith("## ") and not fenced:
            sections[heading] = "\n".join(lines).strip() + "\n"
            heading, lines = line[3:].strip(), []
        else:
            lines.append(line)
    sections[heading] = "\n".join(lines).strip() + "\n"
    return sections


def readme_section(sections: dict[str, str], heading: str) -> str:
    if heading not in sections:
        known = ", ".join(repr(h) for h in sections if h)
        raise KeyError(f"README.md has no section '## {heading}' (the website is built from it); "
                       f"sections found: {known}. Rename it back or update RUN_SECTIONS in course/site.py")
    return sections[heading]


def link_course_map(table: str, lessons: list[Lesson]) -> str:
    """The README's course map with each row's lesson cell (`| 03 Computer vision |`) linked to its page."""
    pages = {lesson.number: lesson.lesson.as_posix() for lesson in lessons}

    def link(match: re.Match) -> str:
        number, name = match.group(1), match.group(2).strip()
        if number not in pages:
            return match.group(0)
        return f"| [{number} {name}]({pages[number]}) |"

    return re.sub(r"^\| (\d\d) ([^|]+)\|", link, table, flags=re.MULTILINE)


def strip_title(text: str) -> str:
    """The README's opening without its `# ` title line."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("# ")).strip() + "\n"


# ----------------------------------------------------------------------------- staging


def write_if_changed(path: Path, content: str | bytes) -> None:
    """Write only when the bytes differ, so Sphinx rebuilds only what changed."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    if path.is_file() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def links_line(notebook: Path, lesson: Lesson, here: Path) -> str:
    """Markdown for the line under a notebook's title: its file, and the lesson's other notebooks."""
    def rel(target: Path) -> str:
        return Path(*[".."] * (len(here.parent.parts))).joinpath(target).as_posix()

    parts = [f"**Notebook:** {{download}}`{notebook.name} </{FILES}/{notebook.as_posix()}>`"]
    for label, target in (("Lesson", lesson.lesson), ("Exercises", lesson.exercises), ("Solutions", lesson.solutions)):
        if target is not None and target != notebook:
            parts.append(f"**{label}:** [{notebook_title(ROOT / target)}]({rel(target)})")
    return " · ".join(parts) + "\n"


def staged_notebook(path: Path, links: str) -> str:
    """The notebook as the site shows it: links under the title, setup printout collapsed, no widgets."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    nb = copy.deepcopy(nb)
    nb.get("metadata", {}).pop("widgets", None)
    cells = []
    for cell in nb["cells"]:
        cell = dict(cell)
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            cell["outputs"] = [o for o in cell.get("outputs", []) if WIDGET_MIME not in o.get("data", {})]
            if "course.setup(" in source:  # versions, device, data, seed: collapsed, one click away
                cell["metadata"] = {**cell.get("metadata", {}),
                                    "tags": [*cell.get("metadata", {}).get("tags", []), "hide-output"]}
        cells.append(cell)
    # the links go right under the title: the first cell is split after its "# " line
    title_at = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
                    and any(line.startswith("# ") for line in "".join(c["source"]).splitlines()))
    lines = "".join(cells[title_at]["source"]).splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if line.startswith("# ")) + 1
    head = {**cells[title_at], "source": "".join(lines[:cut])}
    rest = {**cells[title_at], "id": "course-site-intro", "source": "".join(lines[cut:]).lstrip("\n")}
    links_cell = {"cell_type": "markdown", "id": "course-site-links", "metadata": {}, "source": links}
    nb["cells"] = (cells[:title_at] + [head, links_cell] + ([rest] if rest["source"].strip() else [])
                   + cells[title_at + 1:])
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def api_modules(root: Path = ROOT) -> list[str]:
    """going_modular's modules, by file name (the package itself first)."""
    names = sorted(p.stem for p in (root / "going_modular").glob("*.py") if p.stem != "__init__")
    return ["going_modular"] + [f"going_modular.{name}" for name in names]


def api_page(module: str, root: Path = ROOT) -> str:
    source = root / (module.replace(".", "/") + ("/__init__.py" if module == "going_modular" else ".py"))
    first = source.read_text(encoding="utf-8").splitlines()[0]
    owner = re.search(r"notebooks/(\d\d_\w+)\.ipynb", first)
    written = ""
    if owner and (root / "notebooks" / f"{owner.group(1)}.ipynb").is_file():
        written = (f"Written by [lesson {owner.group(1)[:2]}](../notebooks/{owner.group(1)}.ipynb) "
                   f"(its `%%writefile` cell).\n\n")
    elif owner:  # the notebook that writes it is not in this checkout yet
        written = f"Written by `notebooks/{owner.group(1)}.ipynb`.\n\n"
    # autodoc writes reStructuredText, so the directive runs inside eval-rst
    return (f"# `{module}`\n\n{written}"
            f"```{{eval-rst}}\n.. automodule:: {module}\n   :members:\n   :show-inheritance:\n```\n")


def stage(src: Path, root: Path = ROOT) -> list[str]:
    """Write the site's sources into `src`; returns the page names (without suffix)."""
    lessons = find_lessons(root)
    readme = readme_sections((root / "README.md").read_text(encoding="utf-8"))
    pages: dict[str, str] = {}  # page name -> contents
    files: dict[str, bytes] = {}

    notebooks = {"Lessons": [], "Exercises": [], "Solutions": []}
    for lesson in lessons:
        for kind, path in (("Lessons", lesson.lesson), ("Exercises", lesson.exercises),
                           ("Solutions", lesson.solutions)):
            if path is None:
                continue
            name = path.with_suffix("").as_posix()
            pages[name + ".ipynb"] = staged_notebook(root / path, links_line(path, lesson, path))
            files[f"{FILES}/{path.as_posix()}"] = (root / path).read_bytes()
            notebooks[kind].append(name)

    # pictures the notebooks' markdown shows (e.g. notebooks/images/), at the same relative paths
    for picture in sorted((root / "notebooks").rglob("*")):
        if picture.suffix.lower() in IMAGE_SUFFIXES and ".ipynb_checkpoints" not in picture.parts:
            files[picture.relative_to(root).as_posix()] = picture.read_bytes()

    modules = api_modules(root)
    for module in modules:
        pages[f"api/{module}.md"] = api_page(module, root)
    pages["api/index.md"] = ("# API reference: `going_modular`\n\n"
                             "The package the lessons write with `%%writefile`, one module per concept. "
                             "Each page is generated from the module's docstrings.\n\n"
                             "```{toctree}\n:maxdepth: 1\n\n" + "\n".join(modules) + "\n```\n")

    run_page = ["# Run the course yourself\n",
                "Everything on this website is the notebooks' stored outputs. To run the lessons "
                "yourself, on a laptop CPU or a CUDA GPU, offline or on the original data:\n"]
    for heading in RUN_SECTIONS:
        run_page.append(f"## {heading}\n\n{readme_section(readme, heading)}")
    pages["run.md"] = "\n".join(run_page)

    toctrees = "".join(
        f"\n```{{toctree}}\n:hidden:\n:caption: {caption}\n\n" + "\n".join(entries) + "\n```\n"
        for caption, entries in (("Lessons", notebooks["Lessons"]), ("Exercises", notebooks["Exercises"]),
                                 ("Solutions", notebooks["Solutions"]),
                                 ("Reference", ["run", "api/index"])) if entries)
    pages["index.md"] = (
        "# PyTorch Course Workbook\n\n" + strip_title(readme[""]) +
        "\nNew here? [Run the course yourself](run.md), or read any lesson below with its outputs; "
        "the [API reference](api/index.md) documents the package the lessons write.\n\n"
        "## Course map\n\n:::{container} course-map\n" + link_course_map(readme_section(readme, "Course map"), lessons)
        + ":::\n" + toctrees)

    wanted = {**{k: v.encode("utf-8") for k, v in pages.items()}, **files}
    for name, data in wanted.items():
        write_if_changed(src / name, data)
    for old in [p for p in src.rglob("*") if p.is_file()]:  # a notebook that was renamed or removed
        if old.relative_to(src).as_posix() not in wanted:
            old.unlink()
    return sorted(Path(name).with_suffix("").as_posix() for name in pages)


# ----------------------------------------------------------------------------- build and serve


@dataclass(frozen=True)
class Built:
    out: Path
    pages: int
    seconds: float


def build(out: Path = OUT, *, quiet: bool = False) -> Built:
    """Stage the sources next to `out` and build the HTML site into `out`; raises on failure."""
    from sphinx.cmd.build import build_main

    out = out.resolve()
    src = out.parent / f"{out.name}-src"
    doctrees = out.parent / f"{out.name}-doctrees"
    start = time.perf_counter()
    pages = stage(src)
    args = ["-b", "html", "-c", str(CONFIG), "-d", str(doctrees), str(src), str(out)]
    if quiet:
        args.insert(0, "-q")
    status = build_main(args)
    if status != 0:
        raise RuntimeError(f"the site build failed (sphinx exit status {status}); its messages are above")
    return Built(out, len(pages), time.perf_counter() - start)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # one line per request would drown the URL
        pass


def serve(folder: Path, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """An HTTP server for `folder` on loopback (port 0: any free port); call serve_forever() on it."""
    if not (folder / "index.html").is_file():
        raise FileNotFoundError(f"{folder} has no index.html: build the site first (python -m course site)")
    return ThreadingHTTPServer((host, port), partial(QuietHandler, directory=str(folder)))


def add_parser(sub) -> None:
    """Register `site` on `python -m course`'s subparsers."""
    p = sub.add_parser("site", help="build the course website (stored outputs, offline) and optionally serve it",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=OUT, help="output folder for the HTML")
    p.add_argument("--serve", action="store_true", help="after building, serve the site on loopback")
    p.add_argument("--port", type=int, default=8000, help="port for --serve (0: any free port)")
    p.set_defaults(handler=command_site)


def command_site(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        built = build(args.out)
    except (RuntimeError, FileNotFoundError, KeyError, ValueError) as error:
        print(f"python -m course site: {error}", file=sys.stderr)
        return 1
    print(f"built {built.pages} pages into {built.out} in {built.seconds:.0f} s")
    if not args.serve:
        print(f"open {built.out / 'index.html'}, or serve it: python -m course site --serve")
        return 0
    try:
        server = serve(built.out, port=args.port)
    except OSError as error:
        parser.error(f"cannot serve on 127.0.0.1:{args.port} ({error}); choose another --port")
    print(f"serving {built.out} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl+C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
