"""lookup_api and search_docs read the installed libraries themselves, offline."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from importlib import metadata

import pytest

from tools.context import ToolContext
from tools.errors import ToolError
from tools.research.library_docs import LookupApiTool, SearchDocsTool, index_build_seconds


@pytest.fixture
def ctx(settings, ledger):
    return ToolContext(settings, ledger, jobs=None)


@pytest.fixture
def lookup(ctx):
    return LookupApiTool(ctx)


@pytest.fixture
def search(ctx):
    return SearchDocsTool(ctx)


def installed_field(cls, name):
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def test_sft_config_lists_fields_with_installed_defaults_and_help(lookup):
    import trl

    cfg = lookup(name="trl.SFTConfig")

    assert cfg["kind"] == "config class" and cfg["version"] == metadata.version("trl") == trl.__version__
    assert cfg["defined_in"] == "trl.trainer.sft_config.SFTConfig"
    fields = {f["name"]: f for f in cfg["fields"]}
    assert set(fields) == {f.name for f in dataclasses.fields(trl.SFTConfig)}  # every field
    packing = installed_field(trl.SFTConfig, "packing")
    assert fields["packing"]["default"] == repr(packing.default)
    assert fields["packing"]["help"] == packing.metadata["help"]
    assert "inherited_from" not in fields["packing"]
    assert fields["output_dir"]["inherited_from"] == "transformers.TrainingArguments"
    names = [f["name"] for f in cfg["fields"]]
    assert names.index("packing") < names.index("output_dir")  # own fields first


def test_one_field_has_its_full_help(lookup):
    import trl

    field = lookup(name="trl.GRPOConfig.num_generations")
    assert field["kind"] == "config field" and field["name"] == "num_generations"
    assert field["default"] == repr(installed_field(trl.GRPOConfig, "num_generations").default)
    assert field["help"] == installed_field(trl.GRPOConfig, "num_generations").metadata["help"]


def test_method_signature_and_where_it_is_defined(lookup):
    train = lookup(name="trl.SFTTrainer.train")

    assert train["kind"] == "method"
    assert train["defined_in"] == "transformers.trainer.Trainer.train"
    assert "resume_from_checkpoint" in train["signature"]
    assert train["doc"].startswith("Main training entry point")


def test_bare_name_is_found_in_its_library(lookup):
    import peft

    lora = lookup(name="LoraConfig")
    assert lora["name"] == "peft.LoraConfig" and lora["version"] == peft.__version__
    assert {f["name"]: f["default"] for f in lora["fields"]}["r"] == repr(installed_field(peft.LoraConfig, "r").default)


def test_pydantic_config_and_enum_from_lighteval(lookup):
    cfg = lookup(name="lighteval.models.transformers.transformers_model.TransformersModelConfig")
    device = next(f for f in cfg["fields"] if f["name"] == "device")
    assert device["default"] == "'cuda'" and "cpu" in device["help"]  # help taken from the docstring
    manager = lookup(name="lighteval.pipeline.ParallelismManager")
    assert manager["kind"] == "enum" and "ACCELERATE=1" in manager["members"]


def test_unknown_names_suggest_close_matches(lookup):
    with pytest.raises(ToolError, match=r"trl has no attribute 'GRPOConfg'.*Did you mean trl\.GRPOConfig"):
        lookup(name="trl.GRPOConfg")
    with pytest.raises(ToolError, match=r"Did you mean trl\.SFTConfig\.packing"):
        lookup(name="trl.SFTConfig.pakcing")
    with pytest.raises(ToolError, match="did you mean trl"):
        lookup(name="trll.SFTConfig")


def test_only_allow_listed_libraries_are_read(lookup):
    for name in ("os.system", "subprocess.run", "builtins.eval", "os"):
        with pytest.raises(ToolError, match="not one of the libraries lookup_api reads"):
            lookup(name=name)
    with pytest.raises(ToolError, match="the module os, which lookup_api does not read"):
        lookup(name="smolagents.os.system")


def test_search_docs_packing_ranks_sft_config_first(search):
    hits = search(query="packing")

    assert hits[0] == {"name": "trl.SFTConfig.packing", "kind": "config field", "snippet": hits[0]["snippet"]}
    assert hits[0]["snippet"].startswith("packing: bool = False.")
    assert "trl.SFTConfig" in [h["name"] for h in hits[:5]]
    assert all(set(h) == {"name", "kind", "snippet"} for h in hits)


def test_search_docs_is_fast_once_built_and_can_be_scoped(search):
    search(query="padding_free", library="trl")
    built = dict(index_build_seconds)
    started = time.perf_counter()
    hits = search(query="padding_free", library="trl", limit=3)

    assert time.perf_counter() - started < 0.5 and index_build_seconds == built  # cached, not rebuilt
    assert [h["name"] for h in hits[:2]] == ["trl.SFTConfig.padding_free", "trl.DPOConfig.padding_free"]
    assert all(h["name"].startswith("trl.") for h in hits) and len(hits) == 3


def test_index_is_kept_on_disk_per_installed_version(tmp_path, monkeypatch):
    from tools.research import library_docs

    monkeypatch.setattr(library_docs, "_index", {})
    built = library_docs.build_index("smolagents", tmp_path)
    [cached] = tmp_path.glob("docs-index-smolagents-*.json")

    monkeypatch.setattr(library_docs, "_index", {})
    monkeypatch.setattr(library_docs, "_collect", lambda library: pytest.fail("rebuilt despite the cache"))
    assert library_docs.build_index("smolagents", tmp_path) == built  # read back, no imports

    monkeypatch.setattr(library_docs, "_index", {})
    monkeypatch.setattr(library_docs, "_collect", lambda library: [{"name": "smolagents.New", "kind": "class",
                                                                    "text": "from the upgraded version"}])
    monkeypatch.setattr(library_docs, "version_of", lambda library: "99.0")
    assert [e["name"] for e in library_docs.build_index("smolagents", tmp_path)] == ["smolagents.New"]
    assert len(list(tmp_path.glob("docs-index-smolagents-*.json"))) == 2 and cached.exists()


def test_search_docs_finds_hub_job_api_and_lora_fields(search):
    [job] = search(query="run_uv_job", library="huggingface_hub", limit=1)
    assert job["name"] == "huggingface_hub.HfApi.run_uv_job" and job["kind"] == "method"
    names = [h["name"] for h in search(query="lora target modules", limit=5)]
    assert "peft.LoraConfig.target_modules" in names


def test_search_docs_bad_input(search):
    with pytest.raises(ToolError, match="needs a keyword"):
        search(query=" ?! ")
    with pytest.raises(ToolError, match="Unknown library 'jax'"):
        search(query="packing", library="jax")


def test_tool_descriptions_warn_that_memory_is_out_of_date(ctx):
    for tool in (LookupApiTool(ctx), SearchDocsTool(ctx)):
        assert "out of date" in tool.description and "Example:" in tool.description


def test_importing_the_tools_does_not_import_the_libraries():
    code = ("import sys, tools.research.library_docs, tools.research.code_search; "
            "print([m for m in ('torch', 'trl', 'transformers', 'peft', 'lighteval') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
