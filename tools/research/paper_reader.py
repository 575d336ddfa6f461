"""Reading a paper's full text: the LaTeXML HTML that arxiv.org/html (fallback ar5iv) serves, split
into its sections, so the agent reads the method or the hyperparameters, not the whole paper.

    paper = fetch_paper(settings, "2402.03300")       # Paper(title, sections, url)
    read_paper(arxiv_id="2402.03300", section="hyperparameters", max_chars=6000)   # the tool

Paper text is written by third parties: it is returned fenced (tools.untrusted), never as instructions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import Comment
from smolagents import Tool

from tools.context import ToolContext
from tools.errors import ToolError
from tools.research.arxiv import RemoteError, Waiter, arxiv_id, polite_get
from tools.settings import Settings
from tools.untrusted import fence

LEVELS = {"ltx_section": 1, "ltx_appendix": 1, "ltx_subsection": 2, "ltx_subsubsection": 3, "ltx_paragraph": 4}
BLOCKS = {"p", "div", "li", "ul", "ol", "figcaption", "figure", "tr", "br", "blockquote", "dd", "dt",
          "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "table", "tbody", "thead"}
SKIP = {"script", "style", "annotation", "annotation-xml", "button", "nav", "header", "footer", "img"}
ALIASES = {
    "method": re.compile(r"method|approach|training|setup|algorithm", re.I),
    "experiments": re.compile(r"experiment|result|evaluation|benchmark|ablation", re.I),
    "hyperparameters": re.compile(r"hyper-?param|implementation|training detail|setup|configuration", re.I),
}
HYPER_TEXT = re.compile(r"hyper-?parameters?|learning rate|batch size|warm-?up|implementation details", re.I)
BEFORE_METHOD = re.compile(r"introduction|related|background|preliminar", re.I)
MIN_CHARS, MAX_CHARS = 500, 30000
CACHE_SIZE = 8


@dataclass
class Section:
    title: str
    level: int
    text: str  # its own text, without its subsections
    children: list[Section] = field(default_factory=list)

    def full_text(self) -> str:
        """Its text followed by its subsections' (titled), in document order."""
        parts = [self.text] + [f"{'#' * (c.level + 1)} {c.title}\n{c.full_text()}" for c in self.children]
        return "\n".join(p for p in parts if p)

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class Paper:
    arxiv_id: str
    title: str
    url: str
    sections: list[Section]  # top level, in document order; the abstract first when there is one

    def all_sections(self) -> list[Section]:
        return [s for top in self.sections for s in top.walk()]

    def text(self) -> str:
        """The whole paper as plain text (bibliography excluded)."""
        return "\n".join(f"{s.title}\n{s.full_text()}" for s in self.sections)


def section_level(tag: Tag) -> int | None:
    for name in tag.get("class") or []:
        if name in LEVELS:
            return LEVELS[name]
    return None


def node_text(node: Tag) -> str:
    """Readable text of `node` without nested sections: math as its LaTeX, table rows as `a | b`."""
    parts: list[str] = []
    for child in node.children:
        if isinstance(child, Comment):
            continue
        if isinstance(child, NavigableString):
            parts.append(str(child))
        elif isinstance(child, Tag) and child.name not in SKIP and section_level(child) is None \
                and "ltx_bibliography" not in (child.get("class") or []):
            if child.name == "math":
                parts.append(f" {child.get('alttext', '')} ")
            elif child.name == "tr":
                cells = [" ".join(node_text(c).split()) for c in child.find_all(["td", "th"], recursive=False)]
                if "ltx_eqn_row" in (child.get("class") or []):  # a displayed equation, not a table row
                    parts.append("\n" + " ".join(c for c in cells if c) + "\n")
                else:
                    parts.append("\n" + " | ".join(cells) + "\n")
            elif child.name in BLOCKS:
                parts.append("\n" + node_text(child) + "\n")
            else:
                parts.append(node_text(child))
    return "".join(parts)


def clean(text: str) -> str:
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def parse_section(tag: Tag) -> Section:
    heading = tag.find(class_="ltx_title")
    title = clean(node_text(heading)).replace("\n", " ") if heading else ""
    if heading:
        heading.extract()
    children = [parse_section(t) for t in tag.find_all(lambda t: section_level(t) is not None)
                if t.find_parent(lambda p: section_level(p) is not None) is tag]
    return Section(title[:150] or "(untitled)", section_level(tag) or 1, clean(node_text(tag)), children)


def parse_paper(html: str, paper_id: str = "", url: str = "") -> Paper:
    """Split LaTeXML HTML (arxiv.org/html or ar5iv; <section> or <div> sections) into sections."""
    soup = BeautifulSoup(html, "html.parser")
    heading = soup.find(class_="ltx_title_document")
    title = clean(node_text(heading)).replace("\n", " ") if heading else ""
    sections = []
    abstract = soup.find(class_="ltx_abstract")
    if abstract:
        if abstract.find(class_="ltx_title"):
            abstract.find(class_="ltx_title").extract()
        sections.append(Section("Abstract", 1, clean(node_text(abstract))))
    sections += [parse_section(t) for t in soup.find_all(lambda t: section_level(t) is not None)
                 if t.find_parent(lambda p: section_level(p) is not None) is None]
    return Paper(paper_id, title, url, sections)


def fetch_paper(settings: Settings, paper_id: str, max_wait_s: float = 10.0) -> Paper:
    """The paper's HTML from arxiv.org/html, else ar5iv, parsed. ToolError when neither has it."""
    paper_id = arxiv_id(paper_id, keep_version=True)
    waiter = Waiter(max_wait_s)
    failures, statuses = [], []
    for base in (settings.arxiv_html_url, settings.ar5iv_url):
        url = f"{base.rstrip('/')}/html/{paper_id}"
        try:
            reply = polite_get(url, timeout=settings.http_timeout_s, waiter=waiter, label=url)
        except RemoteError as err:
            failures.append(str(err))
            statuses.append(err.status)
            continue
        paper = parse_paper(reply.text, paper_id, str(reply.url)) if reply.status_code == 200 else None
        if paper and paper.sections:
            return paper
        statuses.append(404 if reply.status_code == 200 else reply.status_code)
        failures.append(f"{url}: " + ("no LaTeXML sections in the page" if reply.status_code == 200
                                      else f"HTTP {reply.status_code}"))
    if all(s == 404 for s in statuses):
        raise ToolError(f"No HTML version of arXiv:{paper_id} exists (arxiv.org/html and ar5iv both have none); "
                        "the paper may be PDF-only: use the abstract from search_papers, or another paper.")
    raise ToolError(f"Could not fetch arXiv:{paper_id} ({'; '.join(failures)}); retry in a minute.")


def pick_sections(paper: Paper, section: str) -> tuple[list[Section], str]:
    """The sections that answer `section` (an alias or a title), outermost only, and a note."""
    found: list[Section] = []
    everything = paper.all_sections()
    wanted = section.strip().lower()
    if wanted in ALIASES:
        found = [s for s in everything if ALIASES[wanted].search(s.title)]
        if wanted == "hyperparameters":
            by_text = sorted((s for s in everything if s not in found and HYPER_TEXT.search(s.text)),
                             key=lambda s: -len(HYPER_TEXT.findall(s.text)))
            found += by_text[:3]
    else:
        found = [s for s in everything if wanted in s.title.lower()]
    note = ""
    if not found and wanted == "method":
        tops = [s for s in paper.sections if s.title != "Abstract"]
        stop = next((i for i, s in enumerate(tops) if ALIASES["experiments"].search(s.title)), len(tops))
        start = max((i for i, s in enumerate(tops[:stop]) if BEFORE_METHOD.search(s.title)), default=-1)
        found = tops[start + 1:stop][:3]
        note = "No section is titled like a method; returning the sections between the background and the experiments."
    inside = {id(d) for s in found for d in list(s.walk())[1:]}
    order = {id(s): i for i, s in enumerate(everything)}
    return sorted((s for s in found if id(s) not in inside), key=lambda s: order[id(s)]), note


def render(sections: list[Section], max_chars: int) -> tuple[str, list[str]]:
    """The sections as "## title\\ntext" within `max_chars`; returns (text, titles left out or cut)."""
    out, left_out, used = [], [], 0
    for s in sections:
        chunk = f"## {s.title}\n{s.full_text()}\n"
        room = max_chars - used
        if room < 200:
            left_out.append(s.title)
            continue
        if len(chunk) > room:
            chunk = chunk[: room - 1] + "…"
            left_out.append(f"{s.title} (cut)")
        out.append(chunk)
        used += len(chunk)
    return "".join(out), left_out


class ReadPaperTool(Tool):
    name = "read_paper"
    description = """Read sections of an arXiv paper's full text (its HTML version) to learn exactly how it
trained. Errors when the paper is PDF-only or no section matches.
Returns {"title", "url", "sections", "text", "left_out": [titles that did not fit], "outline"...}.
Example: read_paper(arxiv_id="2305.18290", section="hyperparameters", max_chars=4000)"""
    inputs = {
        "arxiv_id": {"type": "string", "description": "arXiv id, e.g. '2402.03300' (a version like 'v2' is kept)."},
        "section": {"type": "string", "nullable": True,
                    "description": "'method' (default), 'experiments', 'hyperparameters', 'all' (an outline) or "
                                   "part of a title."},
        "max_chars": {"type": "integer", "nullable": True, "description": "Text budget (500-30000, default 6000)."},
    }
    output_type = "object"

    def __init__(self, ctx: ToolContext, max_wait_s: float = 10.0):
        super().__init__()
        self.ctx, self.max_wait_s = ctx, max_wait_s
        self.cache: dict[str, Paper] = {}

    def paper(self, paper_id: str) -> Paper:
        key = arxiv_id(paper_id, keep_version=True)
        if key not in self.cache:
            if len(self.cache) >= CACHE_SIZE:
                self.cache.pop(next(iter(self.cache)))
            self.cache[key] = fetch_paper(self.ctx.settings, key, self.max_wait_s)
        return self.cache[key]

    def forward(self, arxiv_id: str, section: str | None = "method", max_chars: int | None = 6000) -> dict:
        section = (section or "method").strip()
        max_chars = max(MIN_CHARS, min(int(max_chars or 6000), MAX_CHARS))
        paper = self.paper(arxiv_id)
        source = f"arXiv:{paper.arxiv_id} ({section})"
        result = {"arxiv_id": paper.arxiv_id, "title": paper.title[:300], "url": paper.url, "section": section}
        if section.lower() == "all":
            abstract = next((s.text for s in paper.sections if s.title == "Abstract"), "")
            outline = [{"title": s.title, "level": s.level, "chars": len(s.full_text())}
                       for s in paper.all_sections() if s.title != "Abstract"]
            return {**result, "sections": ["Abstract"], "text": fence(abstract, source, max_chars),
                    "left_out": [], "outline": outline, "note": ""}
        chosen, note = pick_sections(paper, section)
        if not chosen:
            titles = [s.title for s in paper.all_sections() if s.level <= 2]
            raise ToolError(f"No section of arXiv:{paper.arxiv_id} matches {section!r}; its sections are: "
                            f"{'; '.join(titles)[:1500]}. Pass part of one of these titles, or 'all'.")
        text, left_out = render(chosen, max_chars)
        return {**result, "sections": [s.title for s in chosen], "text": fence(text, source, max_chars),
                "left_out": left_out, "note": note}
