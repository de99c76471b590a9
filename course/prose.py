"""Keep lesson prose true: find numbers typed in markdown that no code or output of the notebook shows.

A number typed in a markdown cell is *backed* when the same digits (thousands separators ignored)
occur in the source or a stored output of another cell of the same notebook, so a re-run that moves
the number leaves the prose visibly behind. A number that is an external fact (a paper's figure, the
original course's result, a library default) is *cited*: the sentence that holds it also holds a
markdown link to where it comes from, for example

    ViT-B/16 has 86 million parameters ([Dosovitskiy et al., Table 1](https://arxiv.org/abs/2010.11929)).

Everything else is an *offender*: the stale-prose bug, or a fact that needs its source.

Skipped, as in ../shared/tools/prose_numbers.py: headings, `code literals`, single digits, years,
lesson/section/exercise/figure/table/step references and lesson ranges such as 00-05.

Lesson prose also speaks to a learner: the project's tooling words (papermill, nbval, regression
test, the time budget, the default profile) belong in the README and the tests, not in a lesson's
markdown.

    python -m course.prose notebooks/04_pytorch_custom_datasets.ipynb   # lists offenders
"""
from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

NUMBER = re.compile(r"(?<![\w.])(\d[\d,]*\.?\d*)")
LINK = re.compile(r"\]\([^)]+\)")
REFERENCE = re.compile(
    r"(?i)\b(lessons?|sections?|§|equations?|eq\.|tables?|figures?|fig\.|exercises?|steps?|parts?|cells?|"
    r"chapters?|notebooks?)\s+[\d.,\s–-]+(and\s+[\d.]+)?"
)
TOOLING_WORDS = re.compile(r"(?i)\b(papermill|nbval|regression tests?|(?:time )?budgets?|default profile)\b")


@dataclass(frozen=True)
class Offender:
    notebook: str
    cell: int
    number: str
    context: str

    def __str__(self) -> str:
        return f"{self.notebook} cell {self.cell}: {self.number!r} in …{self.context}…"


def _norm(number: str) -> str:
    return number.replace(",", "").rstrip(".")


def _cell_text(cell: dict) -> str:
    """A cell's source (code cells only) and every text it stored as output."""
    parts = ["".join(cell["source"])] if cell["cell_type"] == "code" else []
    for output in cell.get("outputs", []):
        parts.append("".join(output.get("text", "")))
        for kind, value in output.get("data", {}).items():
            if kind.startswith("text/"):
                parts.append("".join(value))
    return "\n".join(parts)


def _numbers(text: str) -> set[str]:
    return {_norm(n) for n in re.findall(r"\d[\d,]*\.?\d*", text.replace(",", ""))}


def _sentences(markdown: str) -> list[str]:
    """Split prose into sentences (and list items, table rows), the unit a citation link covers."""
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z(*_`\[])|\n", markdown) if s.strip()]


def _prose(markdown: str) -> str:
    """The markdown with what is not prose removed: headings, code literals, images, references."""
    lines = [line for line in markdown.splitlines() if not line.lstrip().startswith("#")]
    text = "\n".join(lines)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)  # images
    text = re.sub(r"<[^>]+>", "", text)  # html tags and their attributes
    text = REFERENCE.sub("", text)
    text = re.sub(r"\b\d\d[–-]\d\d\b", "", text)  # lesson ranges: 00-05, 06–08
    return text


def offenders(path: str | Path) -> list[Offender]:
    """Every unbacked, uncited number in the markdown of one notebook."""
    path = Path(path)
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    backed_by = [_numbers(_cell_text(c)) for c in cells]
    found = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        others = set().union(*(b for j, b in enumerate(backed_by) if j != i))
        for sentence in _sentences(_prose("".join(cell["source"]))):
            if LINK.search(sentence):  # a cited fact: the sentence links to its source
                continue
            for match in NUMBER.finditer(re.sub(r"\]\([^)]*\)", "]", sentence)):
                number = _norm(match.group(1))
                if len(number.replace(".", "")) < 2 or re.fullmatch(r"(19|20)\d\d", number):
                    continue
                if number in others or ("." in number and any(o.startswith(number) for o in others)):
                    continue
                context = sentence[max(0, match.start() - 50): match.end() + 30].replace("\n", " ")
                found.append(Offender(path.name, i, number, context))
    return found


def tooling_words(path: str | Path) -> list[Offender]:
    """Markdown that talks about the project's test tooling instead of to the learner."""
    path = Path(path)
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "markdown":
            text = "".join(cell["source"])
            for match in TOOLING_WORDS.finditer(text):
                context = text[max(0, match.start() - 50): match.end() + 30].replace("\n", " ")
                found.append(Offender(path.name, i, match.group(0), context))
    return found


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[0], "\nusage: python -m course.prose NOTEBOOK...", file=sys.stderr)
        return 2
    count = 0
    for name in argv:
        for offender in offenders(name) + tooling_words(name):
            print(offender)
            count += 1
    print(f"{count} offender(s)", file=sys.stderr)
    return 1 if count else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
