"""read_paper: LaTeXML HTML from the fake arxiv.org/html (and ar5iv), split into sections, returned fenced."""

from __future__ import annotations

import pytest

from tests.fakes.arxiv_api import FIXTURES, papers_settings, serve_arxiv
from tools.context import ToolContext
from tools.errors import ToolError
from tools.research.paper_reader import ReadPaperTool, parse_paper, pick_sections
from tools.untrusted import END

PAPER = "2502.14321"
HTML = (FIXTURES / "html_2502.14321v2.html").read_text()


@pytest.fixture
def arxiv():
    server = serve_arxiv()
    yield server
    server.close()


def make_tool(settings, ledger, arxiv, ar5iv=None) -> ReadPaperTool:
    return ReadPaperTool(ToolContext(papers_settings(settings, arxiv, ar5iv=ar5iv), ledger, jobs=None), max_wait_s=2)


def body(fenced: str) -> str:
    """The text between the fence markers."""
    return fenced.split("\n", 1)[1].rsplit("\n", 1)[0]


def test_html_is_split_into_titled_nested_sections():
    paper = parse_paper(HTML, PAPER)

    assert paper.title == "Small-Model GRPO: A Reproducible Recipe for Grade-School Math Reasoning"
    assert [s.title for s in paper.sections] == [
        "Abstract", "1 Introduction", "2 Related Work", "3 Approach", "4 Experiments", "5 Conclusion",
        "Appendix A Implementation details"]  # the bibliography is left out
    approach = paper.sections[3]
    assert [(c.title, c.level) for c in approach.children] == [("3.1 Reward design", 2), ("3.2 Training setup", 2)]
    assert approach.text == ("Our pipeline has two stages: an SFT warm start on worked solutions, then GRPO with a "
                             "rule-based correctness reward.")
    setup = approach.children[1].text
    assert "a learning rate of 2\\times 10^{-5} and" in setup  # math as its LaTeX, not MathML soup
    assert "Hyperparameter | SFT | GRPO\nLearning rate | 2\\times 10^{-5} | 1e-6" in paper.sections[-1].text
    assert "(Shao et al., 2024; DeepSeek-AI, 2025)" in paper.sections[1].text
    assert "bibliography noise" not in paper.text()


def test_older_div_sections_parse_the_same():
    divs = parse_paper(HTML.replace("<section ", "<div ").replace("</section>", "</div>"), PAPER)
    assert [s.title for s in divs.all_sections()] == [s.title for s in parse_paper(HTML, PAPER).all_sections()]


@pytest.mark.parametrize("section, titles", [
    ("method", ["3 Approach"]),
    ("experiments", ["4 Experiments"]),
    ("hyperparameters", ["3.2 Training setup", "Appendix A Implementation details"]),
    ("Related", ["2 Related Work"]),
    ("3.1", ["3.1 Reward design"]),
])
def test_aliases_and_titles_choose_sections(section, titles):
    chosen, note = pick_sections(parse_paper(HTML, PAPER), section)
    assert [s.title for s in chosen] == titles and note == ""


def test_method_falls_back_to_the_sections_between_background_and_experiments():
    html = """<article class="ltx_document"><h1 class="ltx_title ltx_title_document">DPO</h1>
    <section class="ltx_section"><h2 class="ltx_title">1 Introduction</h2><p>Intro.</p></section>
    <section class="ltx_section"><h2 class="ltx_title">2 Preliminaries</h2><p>RLHF.</p></section>
    <section class="ltx_section"><h2 class="ltx_title">3 Direct Preference Optimization</h2><p>Loss.</p></section>
    <section class="ltx_section"><h2 class="ltx_title">4 Theoretical Analysis of DPO</h2><p>Proof.</p></section>
    <section class="ltx_section"><h2 class="ltx_title">5 Experiments</h2><p>Win rates.</p></section></article>"""
    chosen, note = pick_sections(parse_paper(html), "method")
    assert [s.title for s in chosen] == ["3 Direct Preference Optimization", "4 Theoretical Analysis of DPO"]
    assert note.startswith("No section is titled like a method")


def test_read_method_returns_the_section_with_its_subsections_fenced(settings, ledger, arxiv):
    result = make_tool(settings, ledger, arxiv)(arxiv_id=PAPER, section="method")

    assert arxiv.requests[-1].path == f"/html/{PAPER}"
    assert result["title"].startswith("Small-Model GRPO") and result["url"] == f"{arxiv.url}/html/{PAPER}"
    assert result["sections"] == ["3 Approach"] and result["left_out"] == [] and result["note"] == ""
    text = result["text"]
    assert text.startswith(f"<<<UNTRUSTED DATA from arXiv:{PAPER} (method)") and text.endswith(END)
    assert body(text).startswith("## 3 Approach\nOur pipeline has two stages")
    assert "### 3.2 Training setup\nWe fine-tune Qwen2.5-1.5B-Instruct" in text
    assert "4 Experiments" not in text


def test_hyperparameters_include_the_appendix_table(settings, ledger, arxiv):
    result = make_tool(settings, ledger, arxiv)(arxiv_id=PAPER, section="hyperparameters")

    assert result["sections"] == ["3.2 Training setup", "Appendix A Implementation details"]
    assert "Warmup ratio | 0.03 | 0.1" in result["text"]


def test_all_gives_an_outline_with_sizes_and_the_abstract(settings, ledger, arxiv):
    result = make_tool(settings, ledger, arxiv)(arxiv_id=PAPER, section="all")

    outline = {o["title"]: o for o in result["outline"]}
    assert list(outline)[:3] == ["1 Introduction", "2 Related Work", "2.1 Preference optimization"]
    assert outline["3.2 Training setup"]["level"] == 2
    assert outline["3 Approach"]["chars"] > outline["3.2 Training setup"]["chars"] > 500
    assert body(result["text"]).startswith("We study how far reinforcement learning with verifiable rewards")


def test_size_budget_cuts_and_reports_what_was_left_out(settings, ledger, arxiv):
    result = make_tool(settings, ledger, arxiv)(arxiv_id=PAPER, section="hyperparameters", max_chars=500)

    assert len(body(result["text"])) <= 500
    assert result["left_out"] == ["3.2 Training setup (cut)", "Appendix A Implementation details"]


def test_injected_instructions_stay_inside_the_fence(settings, ledger, arxiv):
    text = make_tool(settings, ledger, arxiv)(arxiv_id=PAPER, section="conclusion")["text"]
    assert "Ignore all previous instructions" in body(text) and text.count(END) == 1


def test_a_version_is_kept_and_pages_are_cached(settings, ledger, arxiv):
    tool = make_tool(settings, ledger, arxiv)
    tool(arxiv_id=f"arXiv:{PAPER}v2", section="method")
    tool(arxiv_id=f"{PAPER}v2", section="experiments")

    assert [r.path for r in arxiv.requests] == [f"/html/{PAPER}v2"]


def test_ar5iv_is_the_fallback_when_arxiv_has_no_html(settings, ledger, arxiv):
    arxiv.state["html"] = False
    ar5iv = serve_arxiv({"div_sections": True})
    try:
        result = make_tool(settings, ledger, arxiv, ar5iv)(arxiv_id=PAPER, section="experiments")
    finally:
        ar5iv.close()

    assert [r.path for r in arxiv.requests] == [f"/html/{PAPER}"]
    assert [r.path for r in ar5iv.requests] == [f"/html/{PAPER}"]
    assert result["url"] == f"{ar5iv.url}/html/{PAPER}" and result["sections"] == ["4 Experiments"]


def test_no_html_anywhere_is_a_clear_error(settings, ledger, arxiv):
    with pytest.raises(ToolError, match=r"No HTML version of arXiv:2305.18290 exists .*PDF-only"):
        make_tool(settings, ledger, arxiv)(arxiv_id="2305.18290")
    assert [r.path for r in arxiv.requests] == ["/html/2305.18290", "/html/2305.18290"]  # arxiv.org, then ar5iv


def test_persistent_rate_limit_is_an_error_naming_the_statuses(settings, ledger, arxiv, monkeypatch):
    monkeypatch.setattr("tools.research.arxiv.sleep", lambda s: None)
    arxiv.state.update(rate_limit=20, retry_after="1")
    with pytest.raises(ToolError, match=r"Could not fetch arXiv:2502.14321 \(.*HTTP 429 .*retry in a minute"):
        make_tool(settings, ledger, arxiv)(arxiv_id=PAPER)


def test_unknown_section_lists_the_real_ones(settings, ledger, arxiv):
    with pytest.raises(ToolError, match=r"No section .* matches 'limitations'; its sections are: Abstract; "
                                        r"1 Introduction; 2 Related Work; 2.1 Preference optimization"):
        make_tool(settings, ledger, arxiv)(arxiv_id=PAPER, section="limitations")


def test_bad_id_is_refused_without_a_request(settings, ledger, arxiv):
    with pytest.raises(ToolError, match="not an arXiv id"):
        make_tool(settings, ledger, arxiv)(arxiv_id="the GRPO paper")
    assert arxiv.requests == []
