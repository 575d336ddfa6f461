"""The path policy (tools/paths.py), and every tool that takes a local path refusing one outside it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from evals.integrity import DATA_DIR as EVAL_DATA_DIR
from evals.integrity import EVALS_DIR
from tools.context import ToolContext
from tools.data.datasets import InspectDatasetTool
from tools.data.quality import CheckDatasetQualityTool
from tools.data.reformat import ReformatDatasetTool
from tools.data.synthetic import GenerateSyntheticDataTool
from tools.errors import ToolError
from tools.evaluation.evaluate import RunEvaluationTool
from tools.ledger import Ledger
from tools.paths import looks_local, resolve_inside
from tools.settings import Settings
from tools.training.scripts import WriteTrainingScriptTool

ALLOWED = "the session workspace"
ROWS = [{"prompt": f"What is {i} plus 1?", "completion": f"{i + 1}"} for i in range(12)]


@pytest.fixture
def ctx(tmp_path):
    data_dir = tmp_path / "data"
    context = ToolContext(settings=Settings(data_dir=data_dir, compute_backend="local"), ledger=Ledger.in_dir(data_dir),
                          jobs=None, session_id="s1")
    context.workspace.mkdir(parents=True)
    return context


@pytest.fixture
def outside(tmp_path):
    """A real dataset file outside every allowed place."""
    path = tmp_path / "elsewhere" / "secret.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def write_rows(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def test_workspace_is_per_session_under_the_data_dir(ctx):
    assert ctx.workspace.parent.parent == ctx.settings.data_dir / "workspaces"
    assert ctx.workspace.name == "s1"


def test_a_relative_evals_data_path_names_the_shipped_eval_data_and_nothing_else_of_the_project(ctx):
    assert resolve_inside(ctx, "evals/data/tiny_sentiment", "the eval dataset") == EVAL_DATA_DIR / "tiny_sentiment"
    assert looks_local(ctx, "evals/data/tiny_sentiment")
    with pytest.raises(ToolError, match="which tools may not read"):
        resolve_inside(ctx, "tools/settings.py", "the dataset")
    written = resolve_inside(ctx, "evals/data/tiny_sentiment/test.jsonl", "output_dir", write=True)
    assert written == ctx.workspace.resolve() / "evals/data/tiny_sentiment/test.jsonl"  # a write stays in the workspace


def test_relative_paths_start_in_the_workspace(ctx):
    path = write_rows(ctx.workspace / "train.jsonl")
    assert resolve_inside(ctx, "train.jsonl", "the dataset") == path.resolve()
    assert resolve_inside(ctx, "./out/model", "output_dir", write=True) == (ctx.workspace / "out/model").resolve()


def test_data_dir_areas_are_readable_and_writable(ctx):
    checkpoint = ctx.settings.data_dir / "runs" / "3" / "checkpoint"
    checkpoint.mkdir(parents=True)
    assert resolve_inside(ctx, str(checkpoint), "the model path") == checkpoint.resolve()
    assert resolve_inside(ctx, str(checkpoint), "output_dir", write=True) == checkpoint.resolve()
    saved = write_rows(ctx.settings.data_dir / "datasets" / "mine" / "train.jsonl")
    assert resolve_inside(ctx, "datasets/mine/train.jsonl", "the dataset") == saved.resolve()


def test_each_user_of_a_space_has_data_areas_of_their_own_and_cannot_read_anothers(ctx):
    """alice and bob on one Space: what tools wrote for alice (her run's script and checkpoint, her saved dataset)
    is not a path bob's tools can read or write, by absolute path, by `..` or by the relative name alice got."""
    from dataclasses import replace

    alice, bob = replace(ctx, user="alice", session_id="a1"), replace(ctx, user="bob", session_id="b1")
    for who in (alice, bob):
        who.workspace.mkdir(parents=True)
    write_rows(alice.workspace / "train.jsonl")
    run = WriteTrainingScriptTool(alice)(model="Qwen/Qwen3-0.6B", dataset="train.jsonl")
    script = Path(run["script_path"])
    assert script.parent.parent == (ctx.settings.data_dir / "users" / "alice" / "runs").resolve()
    saved = write_rows(alice.data_area("datasets") / "mine" / "train.jsonl")
    assert resolve_inside(alice, "datasets/mine/train.jsonl", "the dataset") == saved.resolve()
    assert resolve_inside(alice, str(script), "the script") == script

    into_alices = "../../../users/alice/datasets/mine/train.jsonl"
    for value in (str(script), str(saved), "datasets/mine/train.jsonl", into_alices):
        with pytest.raises(ToolError, match="may not read|No file or folder"):
            resolve_inside(bob, value, "the dataset")
    for value in (str(script), str(saved.parent), into_alices):
        with pytest.raises(ToolError, match="may not write"):
            resolve_inside(bob, value, "output_dir", write=True)
    assert looks_local(alice, "datasets/mine") and not looks_local(bob, "datasets/mine")
    assert bob.data_area("runs") == ctx.settings.data_dir / "users" / "bob" / "runs"
    assert ctx.data_area("runs") == ctx.settings.data_dir / "runs", "the one local user keeps the data dir's own"


@pytest.mark.parametrize("value", ["../../etc/passwd", "/etc/passwd", "../../ledger.sqlite", "../other/x.jsonl"])
def test_paths_out_of_the_allowed_places_are_refused(ctx, value):
    (ctx.settings.data_dir / "ledger.sqlite").touch()
    with pytest.raises(ToolError, match=f"which tools may not read: files may go only in {ALLOWED}"):
        resolve_inside(ctx, value, "the dataset")
    with pytest.raises(ToolError, match=f"which tools may not write to: files may go only in {ALLOWED}"):
        resolve_inside(ctx, value, "output_dir", write=True)


def test_a_symlink_in_the_workspace_that_leads_out_is_refused(ctx, outside):
    (ctx.workspace / "data.jsonl").symlink_to(outside)
    (ctx.workspace / "folder").symlink_to(outside.parent, target_is_directory=True)
    (ctx.workspace / "dangling").symlink_to(outside.parent / "new-file")
    for value in ("data.jsonl", "folder", "folder/secret.jsonl"):
        with pytest.raises(ToolError, match=f"resolves to {outside.parent}.*files may go only in {ALLOWED}"):
            resolve_inside(ctx, value, "the dataset")
    with pytest.raises(ToolError, match="may not write to"):
        resolve_inside(ctx, "dangling", "output_dir", write=True)


def test_a_folder_holding_a_link_out_is_refused(ctx, outside):
    folder = ctx.workspace / "set"
    write_rows(folder / "train.jsonl")
    (folder / "test.jsonl").symlink_to(outside)
    with pytest.raises(ToolError, match=f"holds {folder / 'test.jsonl'}, a link to {outside}"):
        resolve_inside(ctx, "set", "the dataset")


def test_evals_is_readable_data_but_never_writable(ctx, tmp_path):
    assert resolve_inside(ctx, str(EVAL_DATA_DIR / "tiny_sentiment"), "the eval set").is_dir()
    for target in (EVALS_DIR, EVAL_DATA_DIR / "MANIFEST.sha256", EVAL_DATA_DIR / "tiny_sentiment" / "new"):
        with pytest.raises(ToolError, match=f"inside evals/.*no tool writes there. Write in {ALLOWED}"):
            resolve_inside(ctx, str(target), "output_dir", write=True)
    inside_repo = ToolContext(settings=Settings(data_dir=EVALS_DIR.parent), ledger=ctx.ledger, jobs=None)
    with pytest.raises(ToolError, match="inside evals/"):  # a data dir at the project root: its evals/ area
        resolve_inside(inside_repo, str(EVALS_DIR / "runs"), "output_dir", write=True)


def test_owner_read_dirs_are_read_only(ctx, outside, monkeypatch):
    monkeypatch.setenv("ML_INTERN_READ_DIRS", os.pathsep.join([str(outside.parent), "/nonexistent-too"]))
    settings = Settings.from_env(data_dir=ctx.settings.data_dir)
    assert settings.extra_read_dirs == (outside.parent, Path("/nonexistent-too"))
    owner = ToolContext(settings=settings, ledger=ctx.ledger, jobs=None, session_id="s1")
    assert resolve_inside(owner, str(outside), "the dataset") == outside.resolve()
    with pytest.raises(ToolError, match=f"may not write to: files may go only in {ALLOWED}"):
        resolve_inside(owner, str(outside.parent / "out"), "output_dir", write=True)
    with pytest.raises(ToolError, match=f"the read-only folders {outside.parent}"):
        resolve_inside(owner, "/etc/passwd", "the dataset")


def test_missing_file_in_an_allowed_place_says_so(ctx):
    with pytest.raises(ToolError, match="No file or folder at 'gone.jsonl'.*does not exist"):
        resolve_inside(ctx, "gone.jsonl", "the dataset")


def test_hub_ids_are_not_local_paths(ctx):
    assert not looks_local(ctx, "trl-lib/Capybara")
    assert looks_local(ctx, "./x") and looks_local(ctx, "data.jsonl") and looks_local(ctx, "/abs")
    (ctx.workspace / "owner" / "name").mkdir(parents=True)
    assert looks_local(ctx, "owner/name")  # an existing folder in the workspace wins over the Hub id


ESCAPES = ["../../etc/passwd", "ABSOLUTE", "LINK"]


def escape(ctx, outside, how: str) -> str:
    if how == "ABSOLUTE":
        return str(outside)
    if how == "LINK":
        (ctx.workspace / "link.jsonl").symlink_to(outside)
        return "link.jsonl"
    return how


@pytest.mark.parametrize("how", ESCAPES)
def test_dataset_tools_refuse_paths_out(ctx, outside, how):
    value = escape(ctx, outside, how)
    calls = [lambda: InspectDatasetTool(ctx)(dataset=value),
             lambda: CheckDatasetQualityTool(ctx)(dataset=value),
             lambda: CheckDatasetQualityTool(ctx)(dataset=str(write_rows(ctx.workspace / "ok.jsonl")),
                                                  eval_dataset=value),
             lambda: ReformatDatasetTool(ctx)(dataset=value, target_format="prompt-completion"),
             lambda: GenerateSyntheticDataTool(ctx)(examples=ROWS, spec="sums", eval_dataset=value)]
    for call in calls:
        with pytest.raises(ToolError, match=f"may not read: files may go only in {ALLOWED}"):
            call()


def test_quality_does_not_load_a_tokenizer_from_outside(ctx, outside):
    report = CheckDatasetQualityTool(ctx)(dataset=str(write_rows(ctx.workspace / "ok.jsonl")),
                                          tokenizer=str(outside.parent))
    assert report["lengths"]["unit"] == "whitespace words"
    assert f"may not read: files may go only in {ALLOWED}" in report["lengths"]["note"]


@pytest.mark.parametrize("how", ESCAPES)
def test_write_training_script_refuses_sources_and_output_dirs_out(ctx, outside, how):
    value = escape(ctx, outside, how)
    write = WriteTrainingScriptTool(ctx)
    with pytest.raises(ToolError, match=f"may not read: files may go only in {ALLOWED}"):
        write(model="Qwen/Qwen3-0.6B", dataset=value)
    data = str(write_rows(ctx.workspace / "ok.jsonl"))
    out = {"../../etc/passwd": "../../etc/cron.d/x", "ABSOLUTE": str(outside.parent / "ckpt"),
           "LINK": "link.jsonl"}[how]
    with pytest.raises(ToolError, match=f"may not write to: files may go only in {ALLOWED}"):
        write(model="Qwen/Qwen3-0.6B", dataset=data, output_dir=out)
    with pytest.raises(ToolError, match="inside evals/"):
        write(model="Qwen/Qwen3-0.6B", dataset=data, output_dir=str(EVALS_DIR / "data"))
    assert ctx.ledger.list_runs(user=ctx.user) == []


def test_write_training_script_accepts_the_workspace_and_never_overwrites_a_script(ctx):
    write = WriteTrainingScriptTool(ctx)
    write_rows(ctx.workspace / "ok.jsonl")
    run = write(model="Qwen/Qwen3-0.6B", dataset="ok.jsonl", output_dir="checkpoints/first")
    assert run["output_dir"] == str((ctx.workspace / "checkpoints/first").resolve())
    assert run["config"]["dataset"] == str((ctx.workspace / "ok.jsonl").resolve())
    stale = ctx.settings.data_dir / "runs" / str(run["run_id"] + 1) / "train.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("# the owner's file\n")
    with pytest.raises(ToolError, match="already exists and a training script never overwrites one"):
        write(model="Qwen/Qwen3-0.6B", dataset="ok.jsonl")
    assert stale.read_text() == "# the owner's file\n"


@pytest.mark.parametrize("how", ESCAPES)
def test_run_evaluation_refuses_models_and_custom_data_out(ctx, outside, how):
    value = escape(ctx, outside, how)
    tool = RunEvaluationTool(ctx)
    with pytest.raises(ToolError, match=f"may not read: files may go only in {ALLOWED}"):
        tool(model=value, task="tiny_sentiment")
    checkpoint = ctx.settings.data_dir / "runs" / "1" / "checkpoint"
    checkpoint.mkdir(parents=True, exist_ok=True)
    (checkpoint / "config.json").write_text("{}")
    with pytest.raises(ToolError, match=f"may not read: files may go only in {ALLOWED}"):
        tool(model=str(checkpoint), task=f"custom:{value}", task_options={"kind": "generative"})
