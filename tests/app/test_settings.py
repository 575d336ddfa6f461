"""The Settings tab: a visitor may point the server at an address of their choosing only where the owner allows it.

Locked (on a Space unless the owner sets ML_INTERN_ALLOW_VISITOR_ENDPOINTS=1): the OpenAI-compatible base URL
field is read-only and says why, a typed base URL (or a URL as the model id, which huggingface_hub's
InferenceClient would post to with the HF token) is not saved, and a session never gets one.
"""

from __future__ import annotations

import gradio as gr
import pytest

import app
from agent.config import visitor_endpoints_allowed
from ui.identity import config_for
from ui.settings import save_settings

EVIL = "http://127.0.0.1:9/collect/v1"
OWNERS = "http://127.0.0.1:11434/v1"


@pytest.fixture
def space(monkeypatch, data_dir):
    """A Space whose owner configured an OpenAI-compatible server and did not allow visitor endpoints."""
    monkeypatch.setenv("ML_INTERN_DATA_DIR", str(data_dir))
    monkeypatch.setenv("SPACE_ID", "owner/ml-intern")
    monkeypatch.setenv("ML_INTERN_OPENAI_BASE_URL", OWNERS)
    monkeypatch.delenv("ML_INTERN_ALLOW_VISITOR_ENDPOINTS", raising=False)
    return monkeypatch


def save(openai_url: str = "", model_id: str = "qwen3:8b", backend: str = "openai-compatible"):
    return save_settings(backend, model_id, "", "", "", "local", openai_url)


def field(blocks: gr.Blocks, label: str) -> gr.Textbox:
    [textbox] = [b for b in blocks.blocks.values() if isinstance(b, gr.Textbox) and b.label == label]
    return textbox


@pytest.mark.parametrize("space_id, allow, allowed", [
    (None, None, True), ("owner/ml-intern", None, False), ("owner/ml-intern", "1", True),
    ("owner/ml-intern", "true", True), (None, "0", False), ("owner/ml-intern", "0", False)])
def test_off_by_default_on_a_space_on_locally_and_the_owner_decides(monkeypatch, space_id, allow, allowed):
    for name, value in (("SPACE_ID", space_id), ("ML_INTERN_ALLOW_VISITOR_ENDPOINTS", allow)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert visitor_endpoints_allowed() is allowed


def test_a_typed_base_url_is_refused_on_a_space_and_the_note_says_what_the_owner_sets(space):
    prefs, note = save(EVIL)
    assert "openai_base_url" not in prefs and prefs["model_id"] == "qwen3:8b"
    assert "Not saved: OpenAI-compatible base URL." in note and "ML_INTERN_ALLOW_VISITOR_ENDPOINTS=1" in note
    config = config_for({**prefs, "openai_base_url": EVIL})  # even a crafted state cannot set one
    assert (config.backend, config.model_id, config.openai_base_url) == ("openai-compatible", "qwen3:8b", OWNERS)


def test_the_owners_own_url_saves_without_complaint(space):
    prefs, note = save(OWNERS)
    assert "Not saved" not in note and config_for(prefs).openai_base_url == OWNERS


def test_a_url_as_the_model_id_is_refused_on_a_space(space):
    prefs, note = save(model_id=EVIL, backend="hf-inference")
    assert "model_id" not in prefs and "Not saved: Model id." in note
    config = config_for({**prefs, "model_id": EVIL})
    assert config.backend == "hf-inference" and "://" not in config.model_id


def test_the_field_is_read_only_on_a_space_and_says_why(space):
    settings_tab = app.build_app()
    url = field(settings_tab, "OpenAI-compatible base URL")
    assert url.interactive is False and url.value == OWNERS
    assert "ML_INTERN_ALLOW_VISITOR_ENDPOINTS=1" in url.info and "Locked" in url.info
    assert "URLs are refused" in field(settings_tab, "Model id").info


def test_where_the_owner_allows_it_a_visitor_sets_both(space):
    space.setenv("ML_INTERN_ALLOW_VISITOR_ENDPOINTS", "1")
    prefs, note = save(EVIL, model_id="https://my-endpoint.example/v1")
    assert "Not saved" not in note
    config = config_for(prefs)
    assert (config.openai_base_url, config.model_id) == (EVIL, "https://my-endpoint.example/v1")
    url = field(app.build_app(), "OpenAI-compatible base URL")
    assert url.interactive is not False and not url.info
