"""Beyond one GPU: the SFT script trained by two processes, preflight's DDP / FSDP / LoRA choice per GPU, the
accelerate configuration the script launches with, GPU fast paths checked against the pinned libraries, GRPO
with vLLM, and time estimates from measured throughput."""

from __future__ import annotations

import dataclasses
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from evals.fixture_data import TRAIN_FILE
from tools.backends import hardware
from tools.backends.jobs import LocalJobBackend
from tools.context import ToolContext
from tools.errors import ToolError
from tools.ledger import LOCAL_USER
from tools.settings import Settings
from tools.training.jobs import SubmitJobTool, parse_training_log
from tools.training.preflight import preflight
from tools.training.scripts import TrainingConfig, WriteTrainingScriptTool, check_script, render_training_script
from tools.training.throughput import measured_throughput

ROOT = Path(__file__).resolve().parents[2]
DATA = str(TRAIN_FILE)


def write_script(path: Path, **overrides) -> Path:
    config = TrainingConfig(**{"model": "org/model", "dataset": DATA, "output_dir": str(path.parent / "out"),
                               **overrides})
    path.write_text(render_training_script(config))
    return path


def run_script(script: Path, **env) -> str:
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=script.parent,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", **env}, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def settings_line(log: str) -> dict:
    [line] = [line for line in log.splitlines() if line.startswith("SETTINGS ")]
    return json.loads(line.removeprefix("SETTINGS "))


def test_sft_script_trains_in_two_processes_with_the_loss_curve_of_one(tmp_path, tiny_model_dir):
    """Two gloo processes (what `accelerate launch` starts per GPU) keep the config's global batch, so the loss
    curve follows the one-process run; the main process alone logs and writes one checkpoint."""
    script = write_script(tmp_path / "train.py", model=str(tiny_model_dir), max_steps=8, logging_steps=1,
                          learning_rate=3e-3, per_device_train_batch_size=2, gradient_accumulation_steps=2,
                          max_length=64)
    one = run_script(script, ML_INTERN_OUTPUT_DIR=str(tmp_path / "one"))
    two = run_script(script, ML_INTERN_OUTPUT_DIR=str(tmp_path / "two"),
                     ML_INTERN_LAUNCH=json.dumps({"strategy": "ddp", "num_processes": 2, "cpu": True}))

    assert settings_line(one)["launch"]["world_size"] == 1
    settings = settings_line(two)
    assert settings["launch"]["world_size"] == 2 and settings["gradient_accumulation_steps"] == 1
    curves = []
    for log in (one, two):
        rows, done = parse_training_log(log)
        losses = [r["loss"] for r in rows if "loss" in r]
        assert [r["step"] for r in rows if "loss" in r] == list(range(1, 9))  # logged once, by one process
        assert done and done["global_step"] == 8 and log.count("TRAINING_DONE ") == 1
        curves.append(np.array(losses))
    single, double = curves
    assert double[-1] < 0.9 * double[0] and single[-1] < 0.9 * single[0]
    assert np.corrcoef(single, double)[0, 1] > 0.95
    assert np.max(np.abs(single - double) / single) < 0.05

    saved = sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*.safetensors"))
    assert saved == [Path("model.safetensors")]
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "two")
    assert sum(p.numel() for p in model.parameters()) > 0
    assert json.loads((tmp_path / "two" / "ml_intern_settings.json").read_text())["launch"]["world_size"] == 2


@pytest.fixture
def jobs_settings(tmp_path):
    """HF Jobs settings whose Hub does not answer, so flavors come from the built-in table."""
    return Settings(data_dir=tmp_path, compute_backend="hf-jobs", hf_token="hf_test_token",
                    hf_endpoint="http://127.0.0.1:9", http_timeout_s=5)


def check(settings, n_params, flavor, lora=False, **overrides):
    config = {**dict(method="sft", model="org/model", dataset="org/data", max_steps=100, learning_rate=2e-5,
                     per_device_train_batch_size=8, max_length=1024, lora=lora, push_to_hub=True,
                     hub_model_id="me/out"), **overrides}
    return preflight(config, backend="hf-jobs", flavor=flavor, timeout_minutes=600, settings=settings,
                     dataset_columns=["prompt", "completion"], n_params=n_params)


# (params, LoRA?, flavor) -> strategy ("lora": only LoRA fits this flavor), processes, whether one GPU holds a replica
CASES = [
    (0.6e9, False, "h100", "single", 1, True),
    (1.7e9, False, "h100x8", "ddp", 8, True),
    (1.7e9, False, "l4x4", "fsdp", 4, False),
    (8e9, False, "h100x8", "fsdp", 8, False),
    (8e9, False, "a10g-largex4", "lora", 4, False),
    (8e9, True, "a10g-largex4", "fsdp", 4, False),
    (70e9, False, "h100x8", "lora", 8, False),
    (70e9, True, "h100x8", "fsdp", 8, False),
    (1.7e9, False, "a10g-small", "lora", 1, False),
]


@pytest.mark.parametrize("n_params, lora, flavor, strategy, processes, replica_fits", CASES)
def test_preflight_picks_ddp_fsdp_or_lora_per_gpu(jobs_settings, n_params, lora, flavor, strategy, processes,
                                                  replica_fits):
    report = check(jobs_settings, n_params, flavor, lora=lora)
    launch = report.estimate["launch"]
    assert launch["num_processes"] == processes
    single_gpu = hardware.estimate_memory_gb(n_params, "lora" if lora else "full", 1024, 8)
    target = next(f for f in hardware.builtin_flavors() if f.name == flavor)
    assert (single_gpu <= target.usable_memory_gb) == replica_fits
    if strategy == "lora":
        assert not report.ok and launch["recommend"] == "lora"
        [problem] = [p for p in report.problems if "needs ~" in p]
        assert "LoRA fits this flavor: write the run with lora=True" in problem and launch["reason"] in problem
    else:
        assert report.ok, report.problems
        assert launch["strategy"] == strategy and report.estimate["fits"]
        assert report.estimate["memory_gb"] <= target.usable_memory_gb
        word = {"single": "one GPU", "ddp": "DDP", "fsdp": "FSDP"}[strategy]
        assert word in launch["reason"]
    if strategy == "fsdp":
        assert report.estimate["memory_gb"] < single_gpu  # the per-GPU figure is the sharded one


def test_gradient_checkpointing_only_when_the_run_needs_the_memory(jobs_settings):
    small = check(jobs_settings, 0.5e9, "h100").estimate["launch"]
    big = check(jobs_settings, 1.7e9, "l4x4").estimate["launch"]
    assert small["gradient_checkpointing"] is False and big["gradient_checkpointing"] is True


def test_fsdp_shards_weights_gradients_and_optimizer_but_not_activations():
    one = hardware.estimate_memory_gb(8e9, "full", 1024, 8)
    eight = hardware.estimate_memory_gb(8e9, "full", 1024, 8, shards=8)
    activations = hardware.estimate_memory_gb(1e3, "full", 1024, 8, hidden_size=4096, num_layers=32)
    assert eight < one / 3 and eight > 8e9 * 18 / 8 / 1e9
    assert activations > 1.5  # activations stay whole per GPU


@pytest.fixture(scope="module")
def script_namespace(tmp_path_factory):
    """The functions of a rendered GRPO script with vLLM (it holds the shared body too), without running it."""
    folder = tmp_path_factory.mktemp("grpo-vllm")
    script = write_script(folder / "train.py", method="grpo", use_vllm=True, reward_functions=["exact_answer"])
    return runpy.run_path(str(script), run_name="ml_intern_check")


def launch_args(namespace, plan, monkeypatch):
    """accelerate's own parser and validation applied to the command the script would run on a bf16 GPU box."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    command = namespace["accelerate_command"](plan)
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    args = launch_command_parser().parse_args(command[3:])
    _validate_launch_command(args)
    return command, args


def test_fsdp_config_for_a_multi_gpu_flavor_is_valid_for_the_pinned_accelerate(script_namespace, monkeypatch):
    from accelerate import FullyShardedDataParallelPlugin
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.utils.launch import prepare_multi_gpu_env

    command, args = launch_args(script_namespace, {"strategy": "fsdp", "num_processes": 8}, monkeypatch)
    config = load_config_from_file(args.config_file)
    assert isinstance(config, ClusterConfig) and config.distributed_type == "FSDP"
    assert args.use_fsdp and args.fsdp_version == 2 and args.num_processes == 8 and args.mixed_precision == "bf16"
    env = prepare_multi_gpu_env(args)
    for key, value in env.items():
        if key.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.state_dict_type.name == "FULL_STATE_DICT"
    assert plugin.reshard_after_forward is True and plugin.auto_wrap_policy is not None

    _, ddp = launch_args(script_namespace, {"strategy": "ddp", "num_processes": 4}, monkeypatch)
    assert ddp.multi_gpu and not ddp.use_fsdp and ddp.num_processes == 4
    assert prepare_multi_gpu_env(ddp)["ACCELERATE_MIXED_PRECISION"] == "bf16"


def fake_hopper(monkeypatch, namespace):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(namespace["transformers"].utils, "is_kernels_available", lambda *a, **k: True)
    found = namespace["importlib"].util.find_spec
    monkeypatch.setattr(namespace["importlib"].util, "find_spec",
                        lambda name, *a: object() if name == "liger_kernel" else found(name, *a))


def test_gpu_fast_paths_use_option_names_the_pinned_trl_and_transformers_know(script_namespace, monkeypatch):
    from transformers.modeling_flash_attention_utils import FLASH_ATTN_KERNEL_VERSIONS
    from trl import GRPOConfig, SFTConfig

    cfg = script_namespace["apply_overrides"](script_namespace["CONFIG"])
    cpu = script_namespace["fast_paths"](cfg, {"vllm_server": False})
    assert not any(v for k, v in cpu.items() if k != "padding_free")  # nothing GPU-only on CPU

    fake_hopper(monkeypatch, script_namespace)
    fast = script_namespace["fast_paths"](cfg, {"vllm_server": True, "gradient_checkpointing": False})
    assert fast["bf16"] and fast["use_liger_kernel"] and fast["gradient_checkpointing"] is False
    assert fast["attn_implementation"] == "kernels-community/vllm-flash-attn3"
    assert fast["attn_implementation"] in FLASH_ATTN_KERNEL_VERSIONS and fast["vllm_mode"] == "server"
    args = script_namespace["training_args"](cfg, fast)
    assert args["model_init_kwargs"] == {"attn_implementation": "kernels-community/vllm-flash-attn3"}
    vllm = script_namespace["vllm_args"](fast)
    for config_class, extra in ((SFTConfig, {}), (GRPOConfig, vllm)):
        names = {f.name for f in dataclasses.fields(config_class)}
        assert set(args) | set(extra) <= names
    assert vllm["vllm_server_base_url"] == "http://localhost:8000"
    assert script_namespace["vllm_args"]({**fast, "vllm_mode": "colocate"}) == {"use_vllm": True,
                                                                                "vllm_mode": "colocate"}


def test_grpo_with_vllm_renders_and_passes_its_static_checks(tmp_path, jobs_settings, script_namespace):
    from trl import GRPOConfig

    script = write_script(tmp_path / "train.py", method="grpo", use_vllm=True, reward_functions=["exact_answer"],
                          per_device_train_batch_size=8)
    text = script.read_text()
    check_script(text)
    assert '#     "trl[liger,vllm]==1.16.0",' in text and "'use_vllm': True" in text
    sft = render_training_script(TrainingConfig(model="org/m", dataset=DATA, output_dir="o"))
    assert '#     "trl[liger]==1.16.0",' in sft and "use_vllm" not in sft.split("CONFIG = ")[1].split("}")[0]
    for mode in ("server", "colocate"):
        config = GRPOConfig(output_dir=str(tmp_path / mode), use_cpu=True, bf16=False, num_generations=8,
                            per_device_train_batch_size=8, **script_namespace["vllm_args"]({"vllm_mode": mode}))
        assert config.use_vllm and config.vllm_mode == mode

    grpo = dict(method="grpo", use_vllm=True, num_generations=8, max_completion_length=512)
    on_eight = check(jobs_settings, 1.7e9, "h100x8", **grpo)
    assert on_eight.ok, on_eight.problems
    assert on_eight.estimate["launch"]["num_processes"] == 7  # one GPU serves vLLM
    on_cpu = check(jobs_settings, 0.5e9, "cpu-upgrade", **grpo)
    assert any("use_vllm needs a CUDA GPU" in p for p in on_cpu.problems)


def test_use_vllm_is_refused_for_a_local_cpu_run_and_outside_grpo(settings, ledger, tiny_model_dir):
    ctx = ToolContext(settings=settings, ledger=ledger, jobs=LocalJobBackend(settings.data_dir),
                      emit=lambda *a: None)
    tool = WriteTrainingScriptTool(ctx)
    with pytest.raises(ToolError, match="use_vllm needs a CUDA GPU"):
        tool(model=str(tiny_model_dir), dataset=DATA, method="grpo", use_vllm=True, reward_functions=["exact_answer"])
    with pytest.raises(ToolError, match="use_vllm applies only to GRPO"):
        tool(model=str(tiny_model_dir), dataset=DATA, use_vllm=True)


def finished_run(ledger, runtime_s: float, tokens: float) -> int:
    launch = {"strategy": "ddp", "num_processes": 8, "gpu_model": "H100", "n_params": 1.7e9, "train": "full"}
    run_id = ledger.create_run("sft", "org/model", "org/data", config={"method": "sft", "launch": launch},
                               status="completed", hardware="h100x8", user=LOCAL_USER)
    ledger.record_metrics(run_id, [(50, "num_tokens", tokens / 2), (100, "num_tokens", tokens),
                                   (100, "train_runtime", runtime_s)])
    return run_id


def test_time_estimates_use_throughput_measured_by_finished_runs(ledger, jobs_settings):
    seeded = check(jobs_settings, 1.7e9, "h100x8").estimate
    assert seeded["throughput_source"].startswith("seeded estimate for H100")
    finished_run(ledger, runtime_s=3000, tokens=1.2e8)
    finished_run(ledger, runtime_s=30, tokens=0)  # no tokens logged: ignored
    measured = measured_throughput(ledger, user=LOCAL_USER)
    per_gpu = 1.2e8 / 3000 / 8 / hardware.MULTI_GPU_EFFICIENCY["ddp"] * 1.7
    assert measured == {"H100": round(per_gpu)}
    assert measured_throughput(ledger, user="someone-else") == {}
    def estimate(accumulation: int) -> dict:
        config = dict(method="sft", model="org/model", dataset="org/data", max_steps=100,
                      per_device_train_batch_size=8, gradient_accumulation_steps=accumulation, max_length=1024,
                      push_to_hub=True, hub_model_id="me/o")
        return preflight(config, backend="hf-jobs", flavor="h100x8", timeout_minutes=600, settings=jobs_settings,
                         dataset_columns=["prompt", "completion"], n_params=1.7e9,
                         measured_throughput=measured).estimate

    kept, grown = estimate(8), estimate(1)
    assert kept["throughput_source"] == "measured on H100 by finished runs"
    assert kept["tokens_per_s"] == pytest.approx(1.2e8 / 3000, rel=0.01)  # the measured run's own pace
    # 8 micro-batches split over 8 processes keep the global batch; 1 cannot be split, so each process adds one
    assert kept["tokens"] == grown["tokens"] == 100 * 8 * 8 * 1024
    assert seeded["tokens_per_s"] > 5 * kept["tokens_per_s"] and kept["est_minutes"] > seeded["est_minutes"]


def test_submit_hands_the_launch_plan_to_the_script_and_records_it(settings, ledger, tiny_model_dir):
    ctx = ToolContext(settings=settings, ledger=ledger, jobs=LocalJobBackend(settings.data_dir),
                      emit=lambda *a: None)
    run = WriteTrainingScriptTool(ctx)(model=str(tiny_model_dir), dataset=DATA, max_steps=2)
    job = SubmitJobTool(ctx)(run_id=run["run_id"], timeout_minutes=5)
    ctx.jobs.cancel(job["job_id"])
    state = json.loads((Path(settings.data_dir).resolve() / "jobs" / job["job_id"] / "state.json").read_text())
    assert "ML_INTERN_LAUNCH" in state["env_keys"]
    launch = json.loads(ledger.get_run(run["run_id"], user=LOCAL_USER)["config_json"])["launch"]
    assert launch["strategy"] == "single" and launch["num_processes"] == 1 and launch["train"] == "full"
    assert launch["n_params"] > 0 and "reason" in launch
