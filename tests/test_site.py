"""The course website (`python -m course site`), built from scratch and read as a reader would.

A session fixture runs the command into a temporary folder; the site is served on loopback and
read in headless Chromium (Debian's `chromium`, Playwright's Python API, the browser shared with
the app tests). Every request that would leave 127.0.0.1 is aborted and recorded, and every page
visit asserts that none was needed and that no local file was missing.

Checked: every notebook page shows its title, its links and every figure its notebook stores
(each loaded); lesson 08's equations 1-4 are typeset by the local MathJax; the local search finds
TinyVGG in lessons 03-05; every internal link in the built HTML resolves; no page loads a script,
style, font or image from elsewhere; the API page of engine.train shows its docstring;
`--serve` serves the site. Screenshots of the home page and lesson 06 go to tests/artifacts/.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import re
import subprocess
import sys
import threading
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from course import site
from test_demo_app import artifacts, shared_chromium, stop

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) + \
    sorted((ROOT / "notebooks" / "exercises").glob("*.ipynb")) + sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))
BUILD_TIMEOUT_S = 1200  # about 1.5 min on an idle 2-core machine; much more while it is busy


def built_from(out: Path, notebook: Path) -> Path:
    """The copy of `notebook` the site was built from (the page must match it, even if the
    notebook is being edited while the tests run)."""
    return out.parent / f"{out.name}-src" / site.FILES / notebook.relative_to(ROOT)


def page_of(notebook: Path) -> str:
    """The site path of a notebook's page: notebooks/03_x.ipynb -> notebooks/03_x.html."""
    return notebook.relative_to(ROOT).with_suffix(".html").as_posix()


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> tuple[Path, str]:
    """(site folder, the command's output): `python -m course site --out <tmp>` from scratch."""
    out = tmp_path_factory.mktemp("site") / "html"
    before = {nb: hashlib.sha256(nb.read_bytes()).hexdigest() for nb in NOTEBOOKS}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "course", "site", "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    seconds = time.perf_counter() - start
    assert result.returncode == 0, f"the site build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert (out / "index.html").is_file()
    after = {nb: hashlib.sha256(nb.read_bytes()).hexdigest() for nb in NOTEBOOKS}
    (artifacts() / "site_build.txt").write_text(f"{seconds:.1f} s wall for python -m course site\n"
                                                + result.stdout.splitlines()[-2] + "\n")
    return out, result.stdout + result.stderr, (before, after)


@pytest.fixture(scope="session")
def base_url(built) -> str:
    server = site.serve(built[0], port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class Reader:
    """A Chromium context that may only talk to 127.0.0.1; `visit` opens a page and checks that."""

    def __init__(self, context, base: str):
        self.context, self.base = context, base
        self.left_loopback: list[str] = []
        self.failed: list[str] = []
        context.route("**/*", self._route)

    def _route(self, route):
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.left_loopback.append(route.request.url)
            route.abort()

    def visit(self, path: str, width: int = 1280):
        page = self.context.new_page()
        page.set_viewport_size({"width": width, "height": 800})
        page.set_default_timeout(60_000)
        page.on("response", lambda r: self.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on("requestfailed", lambda r: self.failed.append(f"failed {r.url}"))
        self.left_loopback.clear()
        self.failed.clear()
        page.goto(self.base + path, wait_until="networkidle")
        return page

    @contextlib.contextmanager
    def reading(self, path: str, width: int = 1280):
        """`visit`, and after the block: no request left loopback or failed; the page is closed."""
        page = self.visit(path, width)
        try:
            yield page
            self.assert_offline(path)
        finally:
            page.close()

    def assert_offline(self, path: str) -> None:
        assert not self.left_loopback, f"{path} asked for {self.left_loopback}: the site must not need the network"
        assert not self.failed, f"{path}: requests that failed on loopback: {self.failed}"


@pytest.fixture(scope="session")
def reader(base_url):
    with shared_chromium() as chromium:
        context = chromium.new_context()
        try:
            yield Reader(context, base_url)
        finally:
            context.close()


# ----------------------------------------------------------------------------- the build


def test_the_build_only_reads_the_notebooks(built):
    """Stored outputs are rendered as they are: no notebook changes while the site is built."""
    before, after = built[2]
    changed = [nb.name for nb in before if before[nb] != after[nb]]
    assert not changed, f"notebooks changed during the build (it must only read them): {changed}"


def test_every_notebook_is_a_page(built):
    out, stdout = built[0], built[1]
    assert NOTEBOOKS, "no notebooks found"
    missing = [page_of(nb) for nb in NOTEBOOKS if not (out / page_of(nb)).is_file()]
    assert not missing, f"notebooks without a page: {missing}"
    for extra in ("run.html", "api/index.html", "api/going_modular.engine.html", "search.html"):
        assert (out / extra).is_file(), extra
    pages = int(re.search(r"built (\d+) pages", stdout).group(1))
    assert pages == len(NOTEBOOKS) + len(site.api_modules()) + 3  # + index, run, api/index


def test_no_page_of_the_site_warns(built):
    """Sphinx's warnings about the pages themselves (a broken link or cross-reference in a notebook
    or in the README parts) fail the test; docstring formatting in going_modular is only reported."""
    warnings = [line for line in built[1].splitlines() if "WARNING" in line or "ERROR" in line]
    in_pages = [line for line in warnings if "-src/" in line]
    assert not in_pages, "\n".join(in_pages[:20])


def test_the_home_page_is_the_readme_course_map():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    sections = site.readme_sections(readme)
    linked = site.link_course_map(sections["Course map"], site.find_lessons())
    for lesson in site.find_lessons():
        if f"| {lesson.number} " in sections["Course map"]:
            assert f"]({lesson.lesson.as_posix()}) |" in linked, lesson.number
    with pytest.raises(KeyError, match="no section '## Nope'.*RUN_SECTIONS"):
        site.readme_section(sections, "Nope")


def test_lessons_are_found_by_glob(tmp_path):
    (tmp_path / "notebooks" / "exercises").mkdir(parents=True)
    (tmp_path / "notebooks" / "solutions").mkdir()
    for name in ("notebooks/10_new.ipynb", "notebooks/exercises/10_new_exercises.ipynb", "notebooks/11_next.ipynb"):
        (tmp_path / name).write_text("{}")
    found = site.find_lessons(tmp_path)
    assert [(f.number, f.exercises, f.solutions) for f in found] == [
        ("10", Path("notebooks/exercises/10_new_exercises.ipynb"), None), ("11", None, None)]
    with pytest.raises(FileNotFoundError, match="no lesson notebooks"):
        site.find_lessons(tmp_path / "elsewhere")


def test_no_page_loads_anything_from_elsewhere(built):
    """Scripts, styles, fonts and images are local files (links *to* cited sources may be external)."""
    remote = []
    for html in built[0].rglob("*.html"):
        for tag, attr, value in Links.of(html):
            if tag in ("script", "link", "img", "iframe", "source") and re.match(r"(https?:)?//", value):
                remote.append(f"{html.relative_to(built[0])}: <{tag} {attr}={value}>")
    for css in built[0].rglob("*.css"):
        for url in re.findall(r"url\(\s*['\"]?((?:https?:)?//[^'\")]+)", css.read_text(errors="replace")):
            remote.append(f"{css.relative_to(built[0])}: url({url})")
    assert not remote, "remote resources:\n" + "\n".join(remote[:20])


class Links(HTMLParser):
    """(tag, attribute, value) of every href/src in a page, and the ids it defines."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str, str]] = []
        self.ids: set[str] = set()
        self.problematic: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key):
                self.links.append((tag, key, attrs[key]))

    _cache: dict[Path, "Links"] = {}

    @classmethod
    def parse(cls, path: Path) -> "Links":
        if path not in cls._cache:
            parser = cls()
            text = path.read_text(encoding="utf-8", errors="replace")
            parser.feed(text)
            parser.problematic = set(re.findall(r'<a href="(#[^"]+)"><span class="problematic"', text))
            cls._cache[path] = parser
        return cls._cache[path]

    @classmethod
    def of(cls, path: Path) -> list[tuple[str, str, str]]:
        return cls.parse(path).links


def test_every_internal_link_resolves(built):
    out = built[0]
    broken, checked = [], 0
    for html in sorted(out.rglob("*.html")):
        if html.relative_to(out).parts[0] == "_static":
            continue  # the theme's Jinja macro files, copied with its assets: not pages
        for tag, attr, value in Links.of(html):
            if value.startswith("#") and value in Links.parse(html).problematic:
                continue  # docutils' marker of a docstring markup error; the build log names it
            parts = urlsplit(value)
            if parts.scheme or value.startswith("//"):
                continue  # http(s), mailto, data: not a file of the site
            path = unquote(parts.path)
            target = html if not path else (html.parent / path).resolve()
            if target.is_dir():
                target = target / "index.html"
            checked += 1
            if not target.is_file() or not target.resolve().is_relative_to(out.resolve()):
                broken.append(f"{html.relative_to(out)}: {value}")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in Links.parse(target).ids:
                broken.append(f"{html.relative_to(out)}: {value} (no such anchor)")
    assert checked > 1000, f"only {checked} internal links found: is the link collector broken?"
    assert not broken, f"{len(broken)} broken internal links of {checked}:\n" + "\n".join(broken[:30])


# ----------------------------------------------------------------------------- in the browser


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_page_shows_title_links_and_every_figure(built, reader, notebook):
    path = page_of(notebook)
    source = built_from(built[0], notebook)
    with reader.reading(path) as page:
        title = page.locator("article h1").first.inner_text().replace("#", "").strip()
        assert title == re.sub(r"[`*]", "", site.notebook_title(source))
        images = page.locator("article div.cell_output img")
        expected = site.image_outputs(source)
        assert images.count() == expected, f"{path}: {images.count()} figures on the page, {expected} in the notebook"
        for i in range(expected):
            images.nth(i).scroll_into_view_if_needed()
        page.wait_for_function("Array.from(document.querySelectorAll('article div.cell_output img'))"
                               ".every(img => img.complete)")
        widths = page.eval_on_selector_all("article div.cell_output img", "imgs => imgs.map(i => i.naturalWidth)")
        assert all(w > 0 for w in widths), f"{path}: figures that did not load: {widths}"
        # the line under the title: the notebook file, and the lesson's other notebooks
        hrefs = page.eval_on_selector_all("article a", "links => links.map(a => a.getAttribute('href'))")
        assert any(h and h.endswith("/" + notebook.name) and "_downloads/" in h for h in hrefs), \
            f"{path} does not link its notebook file"
        lesson = next(l for l in site.find_lessons() if notebook.name.startswith(l.number + "_"))
        for other in (lesson.lesson, lesson.exercises, lesson.solutions):
            if other is not None and other != notebook.relative_to(ROOT):
                assert any(h and h.split("#")[0].endswith(Path(page_of(ROOT / other)).name) for h in hrefs), \
                    f"{path} does not link {other}"


def test_exercise_checks_and_solution_ticks_are_shown(reader):
    """The stored check messages: a ✗ with its hint on an unanswered exercise, ✓ on a solution."""
    exercise = sorted((ROOT / "notebooks" / "exercises").glob("00_*.ipynb"))[0]
    with reader.reading(page_of(exercise)) as page:
        text = page.locator("article").inner_text()
        assert "✗ Exercise 1: not answered yet" in text and "Hint: Lesson 00" in text
    solution = sorted((ROOT / "notebooks" / "solutions").glob("00_*.ipynb"))[0]
    with reader.reading(page_of(solution)) as page:
        outputs = page.eval_on_selector_all("article div.cell_output", "divs => divs.map(d => d.innerText)")
        assert sum("✓ Exercise" in text for text in outputs) >= 3, outputs[:5]


def test_lesson_08_equations_are_typeset(reader):
    path = "notebooks/08_pytorch_paper_replicating.html"
    with reader.reading(path) as page:
        page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.document")
        page.evaluate("MathJax.startup.promise")
        maths = page.evaluate("""() => Array.from(MathJax.startup.document.math).map(m => ({
            tex: m.math, display: m.display, tag: m.typesetRoot ? m.typesetRoot.tagName : null,
            width: m.typesetRoot ? m.typesetRoot.getBoundingClientRect().width : 0}))""")
        block = [m for m in maths if m["display"] and all(f"({n})" in m["tex"] for n in (1, 2, 3, 4))]
        assert len(block) == 1, f"equations 1-4 not found among the typeset math: {[m['tex'][:60] for m in maths]}"
        assert block[0]["tag"] == "MJX-CONTAINER" and block[0]["width"] > 300
        for symbol in (r"\mathbf{E}_{pos}", r"\operatorname{MSA}", r"\operatorname{MLP}", r"\mathbf{y}"):
            assert symbol in block[0]["tex"], symbol
        # rendered, not raw: no TeX left in the text a reader sees
        visible = page.locator("article").inner_text()
        assert "\\mathbf" not in visible and "$$" not in visible
        assert all(m["tag"] == "MJX-CONTAINER" and m["width"] > 0 for m in maths)


def test_search_finds_tinyvgg_in_lessons_03_04_05(reader):
    with reader.reading("search.html?q=TinyVGG") as page:
        page.wait_for_function("document.querySelector('#search-results') && "
                               "/Search finished/.test(document.querySelector('#search-results').innerText)")
        hrefs = page.eval_on_selector_all("#search-results a", "links => links.map(a => a.getAttribute('href'))")
        pages = {h.split("?")[0].split("#")[0] for h in hrefs if h}
        for number in ("03", "04", "05"):
            lesson = page_of(next((ROOT / "notebooks").glob(f"{number}_*.ipynb")))
            assert lesson in pages, f"search for TinyVGG did not find lesson {number}: {sorted(pages)}"


def test_engine_train_api_page_shows_its_docstring(reader):
    from going_modular import engine

    path = "api/going_modular.engine.html"
    with reader.reading(path) as page:
        entry = page.locator("dl:has(> dt#going_modular\\.engine\\.train) > dd").first
        text = " ".join(entry.inner_text().split())
        docstring = inspect.getdoc(engine.train)
        assert docstring, "engine.train has no docstring"
        summary = " ".join(docstring.split("\n\n")[0].replace("`", "").split())
        assert summary in text, f"{summary!r} not on {path}: {text[:300]!r}"
        assert "Returns" in text and "val_loss" in text
        assert "val_dataloader" in page.locator("dt#going_modular\\.engine\\.train").inner_text()


def test_screenshots_of_home_and_lesson_06(reader):
    """tests/artifacts/: site_home.png (whole page), site_lesson_06.png (its top) and
    site_lesson_06_figure.png (scrolled to its first figure)."""
    with reader.reading("index.html") as home:  # the course map, each lesson linked to its page
        assert "Course map" in home.locator("article h2").all_inner_texts()[0]
        linked = home.eval_on_selector_all("article table a", "links => links.map(a => a.getAttribute('href'))")
        assert "notebooks/06_pytorch_transfer_learning.html" in linked, linked
        home.screenshot(path=str(artifacts() / "site_home.png"), full_page=True)
    with reader.reading("notebooks/06_pytorch_transfer_learning.html") as page:
        page.screenshot(path=str(artifacts() / "site_lesson_06.png"))
        figure = page.locator("article div.cell_output img").first
        figure.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=figure.element_handle())
        page.screenshot(path=str(artifacts() / "site_lesson_06_figure.png"))
    for name in ("site_home.png", "site_lesson_06.png", "site_lesson_06_figure.png"):
        assert (artifacts() / name).stat().st_size > 20_000, f"{name} is suspiciously small"


def test_serve_prints_the_url_and_serves_the_site(built, tmp_path):
    """`python -m course site --serve --port 0`: rebuilds (nothing changed, so quickly) and serves."""
    log = tmp_path / "serve.log"
    with open(log, "w") as output:
        process = subprocess.Popen([sys.executable, "-m", "course", "site", "--out", str(built[0]), "--serve",
                                    "--port", "0"], cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + BUILD_TIMEOUT_S
        url = None
        while url is None and time.monotonic() < deadline:
            assert process.poll() is None, f"--serve exited:\n{log.read_text()[-3000:]}"
            found = re.search(r"at (http://127\.0\.0\.1:\d+/)", log.read_text())
            url = found.group(1) if found else None
            time.sleep(0.5)
        assert url, f"no URL printed:\n{log.read_text()[-3000:]}"
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200 and b"Course map" in response.read()
    finally:
        stop(process)
