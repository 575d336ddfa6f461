"""Checks before a training run is submitted: will it start, fit, finish in time, and keep its model?

`preflight(config, backend=..., flavor=..., timeout_minutes=..., settings=...)` checks a run config
(as write_training_script records it) and returns a PreflightReport: `problems` (the run would
fail or lose its result: fix them first), `warnings`, and an `estimate` of memory, run time and cost.
`PreflightTool` is the agent's door to it: `preflight_check(run_id, flavor, timeout_minutes)`.
"""

from __future__ import annotations

import ast
import json
import math
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from smolagents import Tool

from tools.backends import hardware
from tools.backends.hub import DatasetViewer, ViewerError, hf_api, is_hub_id
from tools.context import ToolContext
from tools.errors import ToolError
from tools.settings import Settings
from tools.training.throughput import measured_throughput
from tools.trl_formats import METHOD_COLUMNS, conversion_note

DEFAULT_TIMEOUT_MINUTES = 120  # what submit_job uses when no timeout is given
DEFAULT_FLAVOR = "cpu-basic"  # what submit_job uses on HF Jobs when no flavor is given
TIMEOUT_MARGIN = 1.5
SAMPLE_ROWS = 5


@dataclass
class PreflightReport:
    ok: bool
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    estimate: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _is_local(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~")) or value.endswith((".jsonl", ".json")) or Path(value).exists()


def _first_rows(path: Path, split: str) -> list[dict]:
    """The first rows of a local .jsonl/.json file, or of the split's file in a folder of them."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".jsonl", ".json") and p.is_file())
        named = [p for p in files if p.stem == split]
        if not files:
            raise ToolError(f"the dataset folder {path} holds no .jsonl or .json files.")
        path = (named or files)[0]
    if path.suffix == ".jsonl":
        rows = []
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    rows.append(json.loads(line))
                if len(rows) >= SAMPLE_ROWS:
                    break
        return rows
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(lists) == 1 else [data]
    return [r for r in data[:SAMPLE_ROWS] if isinstance(r, dict)]


def read_dataset_columns(dataset: str, split: str, settings: Settings) -> tuple[list[str], dict | None]:
    """(columns, first row) of a local dataset or of a Hub dataset through the viewer's /first-rows."""
    if _is_local(dataset):
        path = Path(dataset).expanduser()
        if not path.exists():
            raise ToolError(f"the local dataset {dataset} does not exist.")
        try:
            rows = _first_rows(path, split)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ToolError(f"the local dataset {dataset} is not valid JSON ({exc}).") from exc
        return (sorted(rows[0]) if rows else []), (rows[0] if rows else None)
    viewer = DatasetViewer(settings)
    try:
        listing = viewer.splits(dataset).get("splits", [])
        configs = [s["config"] for s in listing if s.get("split") == split]
        if not configs:
            found = sorted({s.get("split") for s in listing})
            raise ToolError(f"the Hub dataset {dataset} has no split {split!r} (splits: {found}); set dataset_split.")
        config = "default" if "default" in configs else configs[0]
        reply = viewer.first_rows(dataset, config, split)
    except ViewerError as exc:
        raise ToolError(f"the dataset viewer could not read {dataset} ({exc.status} {exc.code}: "
                        f"{exc.message})") from exc
    rows = [r.get("row", {}) for r in reply.get("rows", [])]
    columns = [f["name"] for f in reply.get("features", [])] or sorted(rows[0] if rows else [])
    return columns, (rows[0] if rows else None)


def column_problem(method: str, columns: list[str], first_row: dict | None) -> str | None:
    """Why these columns do not fit `method`, and what to do; None when they fit."""
    accepted = METHOD_COLUMNS.get(method)
    if accepted is None or any(set(need) <= set(columns) for need in accepted):
        if method == "sft" and "messages" in columns and first_row:
            messages = first_row.get("messages")
            if not (isinstance(messages, list) and messages and all(
                    isinstance(m, dict) and {"role", "content"} <= set(m) for m in messages)):
                return ("the `messages` column is not a list of {role, content} dicts; convert each turn "
                        "(ShareGPT's from/value -> role/content).")
        return None
    wanted = " | ".join("+".join(need) for need in accepted)
    note = conversion_note(columns, first_row)
    return (f"the dataset has columns {sorted(columns)} but {method.upper()} needs {wanted}. "
            + (note or "Rename or build those columns, then write a new run."))


def model_facts(model: str, settings: Settings) -> tuple[int | None, dict, list[str], list[str]]:
    """(parameter count, shape for the memory estimate, problems, warnings) for a local folder or Hub id."""
    problems, warnings, shape = [], [], {}
    if _is_local(model):
        folder = Path(model).expanduser()
        if not (folder / "config.json").is_file():
            return None, shape, [f"the local model {model} has no config.json: point at a saved model folder."], []
        n_params, shape = hardware.count_parameters(folder)
        return n_params, shape, problems, warnings
    if not is_hub_id(model):
        return None, shape, [f"the model {model!r} is neither a local folder nor a Hub id like owner/name."], []
    import httpx
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        info = hf_api(settings).model_info(model, expand=["safetensors"], timeout=settings.http_timeout_s)
    except GatedRepoError:
        return None, shape, [], [f"the model {model} is gated: accept its terms on the Hub with the account of "
                                 "the HF token, or the job will fail to download it."]
    except RepositoryNotFoundError:
        return None, shape, [f"unknown model id {model!r}: check the spelling (ids are owner/name and "
                             "case-sensitive) or search the Hub for the model."], []
    except (HfHubHTTPError, httpx.HTTPError, OSError) as exc:  # offline, 5xx: do not block the run on it
        return None, shape, [], [f"could not look up {model} on the Hub ({type(exc).__name__}); memory and time "
                                 "were not checked."]
    total = info.safetensors.total if info.safetensors else None
    if not total:
        warnings.append(f"the Hub lists no safetensors parameter count for {model}; memory was not checked.")
    return total, shape, problems, warnings


def local_machine() -> hardware.Flavor:
    """This machine as a flavor: its first GPU (nvidia-smi, no torch import) or, without one, its RAM."""
    import psutil

    ram = psutil.virtual_memory().available / 2**30
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10).stdout
            gpus = [line.split(",") for line in out.strip().splitlines() if "," in line]
        except (OSError, subprocess.SubprocessError):
            gpus = []
        if gpus:
            name, mem = gpus[0][0].strip(), float(gpus[0][1]) / 1024
            tflops = next((t for m, (_, t) in hardware.GPU_SPECS.items() if m.lower() in name.lower()), 25)
            return hardware.Flavor("local", f"this machine ({len(gpus)}x {name})", len(gpus), mem, ram, 0.0,
                                   tflops, "local")
    cores = psutil.cpu_count() or 1
    return hardware.Flavor("local", f"this machine (CPU, {cores} cores)", 0, 0.0, ram, 0.0,
                           cores * hardware.CPU_TFLOPS_PER_VCPU, "local")


def _training_method(config: dict) -> str:
    return "qlora" if config.get("qlora") else "lora" if config.get("lora") else "full"


def _spread(plan: dict) -> str:
    """'one GPU', 'DDP over 8 GPUs' or 'FSDP over 8 GPUs' for a hardware.plan_parallelism plan."""
    if plan["strategy"] == "single":
        return "one GPU"
    return f"{plan['strategy'].upper()} over {plan['num_processes']} GPUs"


def _fit_advice(n_params: float, method: str, seq: int, batch: int, flavors, shape: dict) -> str:
    plan = hardware.suggest(n_params, method, seq, batch, flavors, **shape)
    options = []
    if plan["flavor"]:
        options.append(f"flavor={plan['flavor']!r} (~${plan['price_per_hour']:.2f}/h)")
    for alt in plan["alternatives"]:
        where = f" on {alt['flavor']} (~${alt['price_per_hour']:.2f}/h)" if alt["flavor"] else ""
        flag = "qlora=True" if alt["method"] == "qlora" else "lora=True"
        options.append(f"{flag} (~{alt['memory_gb']:.0f} GB{where})")
    if batch > 1:
        options.append(f"per_device_train_batch_size={max(1, batch // 2)} with gradient_accumulation_steps doubled")
    return "Options: " + "; ".join(options) + "." if options else "Use a smaller model."


def preflight(config: dict, *, backend: str, flavor: str | None, timeout_minutes: float | None, settings: Settings,
              dataset_columns: list[str] | None = None, n_params: float | None = None,
              script_path: str | Path | None = None,
              measured_throughput: dict[str, float] | None = None) -> PreflightReport:
    """Check a run config before submitting it; see the module docstring. `measured_throughput` (GPU model ->
    tokens/s, tools/training/throughput.py) replaces the seeded throughput for the time estimate."""
    problems, warnings = [], []
    method = str(config.get("method") or "sft").lower()
    model, dataset = str(config.get("model") or ""), str(config.get("dataset") or "")
    split = str(config.get("dataset_split") or "train")
    remote = backend != "local"
    train = _training_method(config)
    seq = int(config.get("max_length") or 1024)
    batch = int(config.get("per_device_train_batch_size") or 8)
    accum = int(config.get("gradient_accumulation_steps") or 1)

    if script_path is not None:
        script = Path(script_path)
        if not script.is_file():
            problems.append(f"the script {script} does not exist; write the run again with write_training_script.")
        else:
            try:
                ast.parse(script.read_text())
            except SyntaxError as exc:
                problems.append(f"the script does not parse (line {exc.lineno}: {exc.msg}); write it again.")
    if method not in METHOD_COLUMNS:
        problems.append(f"unknown method {method!r}; use one of {', '.join(METHOD_COLUMNS)}.")

    # data
    first_row = None
    if dataset_columns is None and dataset:
        try:
            dataset_columns, first_row = read_dataset_columns(dataset, split, settings)
        except ToolError as exc:
            (problems if _is_local(dataset) or "no split" in str(exc) else warnings).append(
                f"could not check the dataset's columns: {exc}")
    if dataset_columns is not None:
        if problem := column_problem(method, list(dataset_columns), first_row):
            problems.append(problem)
        elif method == "dpo" and "prompt" not in dataset_columns:
            warnings.append("no prompt column: DPO will take the shared start of chosen/rejected as the prompt.")
    if remote:
        for kind, value in (("model", model), ("dataset", dataset)):
            if value and _is_local(value):
                problems.append(f"the {kind} {value} is a local path, which a remote job cannot see: push it to "
                                "the Hub and use its id.")
        if not (config.get("push_to_hub") and config.get("hub_model_id")):
            problems.append("a remote job's filesystem disappears when it ends: set push_to_hub with a "
                            "hub_model_id (write_training_script(hub_model_id='you/name')) or the model is lost.")
        if not settings.hf_token:
            problems.append("HF Jobs needs an HF token with write access: sign in or set HF_TOKEN.")

    # model
    shape: dict = {}
    if n_params is None and model:
        n_params, shape, model_problems, model_warnings = model_facts(model, settings)
        problems += model_problems
        warnings += model_warnings
    if _is_local(model) and Path(model).expanduser().is_dir() and dataset_columns and "messages" in dataset_columns:
        folder = Path(model).expanduser()
        tok = folder / "tokenizer_config.json"
        has_template = (folder / "chat_template.jinja").exists() or (folder / "chat_template.json").exists() or (
            tok.is_file() and json.loads(tok.read_text()).get("chat_template"))
        if not has_template:
            problems.append(f"the dataset is conversational (`messages`) but {model} has no chat template: set "
                            "tokenizer.chat_template, use an instruct model, or convert rows to prompt/completion.")

    # hardware
    if remote:
        flavors = hardware.list_hardware(settings)
        if not flavor:
            flavor = DEFAULT_FLAVOR
            warnings.append(f"no flavor given: submit_job would use {DEFAULT_FLAVOR}.")
        target = next((f for f in flavors if f.name == flavor), None)
        if target is None:
            listing = ", ".join(f.summary() for f in flavors)
            problems.append(f"unknown flavor {flavor!r}. Available: {listing}.")
    else:
        flavors = hardware.builtin_flavors()  # for suggestions only; no Hub call for a local run
        target = local_machine()
        if flavor:
            warnings.append(f"flavor {flavor!r} is ignored: the local backend uses this machine.")
    estimate: dict = {"method": train, "n_params": n_params, "flavor": target.name if target else flavor,
                      "memory_gb": None, "fits": None, "suggested_flavor": None, "est_minutes": None,
                      "cost_usd": None, "price_source": target.source if target else None,
                      "gpu_model": hardware.gpu_model(target) if target else None}
    if train == "qlora" and target is not None and not target.is_gpu:
        problems.append("QLoRA needs a CUDA GPU (bitsandbytes): pick a GPU flavor or use lora=True.")
    if config.get("use_vllm") and target is not None and not target.is_gpu:
        problems.append("use_vllm needs a CUDA GPU (vLLM does not run on CPU): pick a GPU flavor or write the run "
                        "without use_vllm.")
    plan = None
    if n_params and target is not None:
        memory_shape = {**shape, "lora_r": int(config.get("lora_r") or 16)}
        plan = hardware.plan_parallelism(n_params, train, seq, batch, target, vllm=bool(config.get("use_vllm")),
                                         reference_model=method == "dpo" and train == "full", **memory_shape)
        need = plan["memory_gb"]
        advice = hardware.suggest(n_params, train, seq, batch, flavors, **shape)
        estimate.update(memory_gb=need, fits=plan["fits"], suggested_flavor=advice["flavor"],
                        launch={k: plan[k] for k in ("strategy", "num_processes", "gradient_checkpointing",
                                                     "reason")})
        if not plan["fits"]:
            lora = None if train != "full" else hardware.plan_parallelism(
                n_params, "lora", seq, batch, target, vllm=bool(config.get("use_vllm")), **memory_shape)
            fix = _fit_advice(n_params, train, seq, batch, flavors, shape)
            if lora and lora["fits"]:
                estimate["launch"]["recommend"] = "lora"
                fix = (f"LoRA fits this flavor: write the run with lora=True (~{lora['memory_gb']:.0f} GB per GPU, "
                       f"{_spread(lora)}). {fix}")
            what = f"{target.gpu_memory_gb:.0f} GB per GPU" if target.is_gpu else f"{target.ram_gb:.0f} GB RAM"
            problems.append(f"{model} ({n_params / 1e9:.2f}B params, {train}) needs ~{need:.0f} GB per "
                            f"{'GPU' if target.is_gpu else 'process'} at batch {batch} x {seq} tokens, but "
                            f"{target.pretty_name} has {what} ({plan['reason']}). " + fix)
        elif not target.is_gpu and n_params > 3e8:
            warnings.append(f"training a {n_params / 1e9:.1f}B model on CPU is very slow; a GPU flavor such as "
                            f"{advice['flavor']} is usually cheaper per finished run.")

    # time and cost
    minutes = float(timeout_minutes) if timeout_minutes is not None else DEFAULT_TIMEOUT_MINUTES
    if minutes <= 0:
        problems.append(f"timeout_minutes must be positive, got {timeout_minutes}.")
    steps = int(config.get("max_steps") or 0)
    if n_params and target is not None and steps > 0:
        processes = plan["num_processes"] if plan else 1
        # The script keeps the global batch across processes when it can (accumulation divided among them).
        rows_per_step = batch * accum if accum % processes == 0 else batch * accum * processes
        tokens = steps * rows_per_step * seq
        startup = 0.5 if not remote else 4 + n_params * 2 / 1e9 / 3  # image, installs, ~3 GB/min download
        rate, source = hardware.tokens_per_second(
            n_params, target, train, method, measured=measured_throughput,
            processes=processes, strategy=plan["strategy"] if plan else "ddp")
        est = startup + tokens / rate / 60
        estimate.update(est_minutes=round(est, 1), tokens_per_s=round(rate), throughput_source=source)
        estimate["tokens"] = tokens
        if minutes < est:
            fewer = int(steps * minutes / est / TIMEOUT_MARGIN)
            # A paid remote job that times out is money lost; a local one only ends early.
            report_to = problems if remote else warnings
            report_to.append(f"timeout {minutes:.0f} min is below the estimated {est:.0f} min ({steps} steps x "
                            f"{rows_per_step} rows x up to {seq} tokens on {target.name}): set timeout_minutes >= "
                            f"{math.ceil(est * TIMEOUT_MARGIN)} or cut max_steps to ~{fewer}.")
        elif minutes < est * TIMEOUT_MARGIN:
            warnings.append(f"timeout {minutes:.0f} min leaves little margin over the estimated {est:.0f} min; "
                            f"consider {math.ceil(est * TIMEOUT_MARGIN)}.")
    elif steps <= 0:
        warnings.append("max_steps is not set: the run time depends on the dataset size and was not estimated.")
    if target is not None and target.price_per_hour is not None and minutes > 0:
        estimate["cost_usd"] = round(target.price_per_hour * minutes / 60, 2)
        if estimate["est_minutes"] is not None:
            estimate["expected_cost_usd"] = round(target.price_per_hour * min(minutes, estimate["est_minutes"]) / 60, 2)

    lr = config.get("learning_rate")
    if lr and n_params and n_params >= 1e8:
        if train == "full" and lr > 1e-4:
            warnings.append(f"learning_rate {lr} is high for full fine-tuning (typical 1e-5..5e-5).")
        elif train != "full" and lr > 1e-3:
            warnings.append(f"learning_rate {lr} is high for LoRA (typical 1e-4..3e-4).")
    return PreflightReport(ok=not problems, problems=problems, warnings=warnings, estimate=estimate)


class PreflightTool(Tool):
    name = "preflight_check"
    description = """Check a written run before submit_job, starting nothing: script, dataset columns, GPU memory \
(DDP, FSDP, LoRA/QLoRA or another flavor), Hub push, timeout vs estimated time, cost.
Returns {"ok", "problems": [what to fix and how], "warnings", "estimate": {"memory_gb" (per GPU), "launch": \
{"strategy", "num_processes", "reason"}, "suggested_flavor", "est_minutes", "cost_usd"...}}.
Example: preflight_check(run_id=run["run_id"], flavor="a10g-large", timeout_minutes=90)"""
    inputs = {
        "run_id": {"type": "integer", "description": "The run to check, from write_training_script."},
        "flavor": {"type": "string", "description": f"Planned HF Jobs flavor (default {DEFAULT_FLAVOR}; ignored "
                   "locally).", "nullable": True},
        "timeout_minutes": {"type": "number", "description": f"Planned job timeout (default "
                            f"{DEFAULT_TIMEOUT_MINUTES}).", "nullable": True},
    }
    output_type = "object"

    def __init__(self, ctx: ToolContext):
        self.ctx = ctx
        super().__init__()

    def forward(self, run_id: int, flavor: str | None = None, timeout_minutes: float | None = None) -> dict:
        ctx = self.ctx
        run = ctx.ledger.get_run(int(run_id), user=ctx.user)
        if run is None:
            raise ToolError(f"there is no run {run_id}; pass a run_id from write_training_script.")
        config = json.loads(run["config_json"]) if run.get("config_json") else {
            "method": run["method"], "model": run["model"], "dataset": run["dataset"]}
        report = preflight(config, backend=ctx.jobs.name, flavor=(flavor or "").strip() or None,
                           timeout_minutes=timeout_minutes, settings=ctx.settings,
                           script_path=run.get("script_path") or None,
                           measured_throughput=measured_throughput(ctx.ledger, user=ctx.user))
        result = {"run_id": int(run_id), **report.to_dict()}
        ctx.emit("preflight", {"run_id": int(run_id), "ok": report.ok, "problems": len(report.problems),
                               "estimate": report.estimate})
        return result
