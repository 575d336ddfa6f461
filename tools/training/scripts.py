"""Training scripts: render a TRL run (SFT, DPO or GRPO; full, LoRA or QLoRA) from a config into a
PEP 723 uv script, and the tool that writes one for the agent.

The script is a fixed template (tools/training/templates.py) plus a `CONFIG = {...}` literal at its top,
so the same file runs with `uv run train.py` on HF Jobs and with the app's own interpreter locally,
and two runs differ exactly where their configs differ. GRPO scripts embed the source of their reward
functions (tools/training/rewards.py and the agent's own). Scripts print machine-readable lines the job tools parse:

    METRIC {"step": 10, "max_steps": 150, "loss": 2.31, "learning_rate": 0.003, ...}
    TRAINING_DONE {"output_dir": "...", "global_step": 150, "train_loss": 1.2}
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from functools import cache
from pathlib import Path

from smolagents import Tool

from tools.backends.hub import is_hub_id
from tools.context import ToolContext
from tools.data.held_out import evaluation_split
from tools.data.rows import LoadedRows
from tools.errors import ToolError
from tools.paths import looks_local, resolve_inside
from tools.stages import CREATED
from tools.training.admission import admit_training, save_admission
from tools.training.rewards import LIBRARY, check_custom_reward, custom_reward_name, library_listing, reward_source
from tools.training.templates import render_script

SUPPORTED_METHODS = ("sft", "dpo", "grpo")
# trl's own extras: Liger kernels (used on a CUDA GPU when they import) and, for GRPO with use_vllm, vLLM at the
# versions trl 1.16 supports. Flash attention comes from the Hub's `kernels` package when it is installed;
# transformers 5.24 wants kernels>=0.18.2,<0.19, which the package index this was built on does not carry yet.
TRL_DEPENDENCY = "trl[liger]==1.16.0"
TRL_VLLM_DEPENDENCY = "trl[liger,vllm]==1.16.0"
PINNED_DEPENDENCIES = (
    TRL_DEPENDENCY,
    "transformers==5.24.0",
    "peft==0.21.2",
    "datasets==5.2.0",
    "accelerate==1.15.0",
    "torch",
)
QLORA_DEPENDENCY = "bitsandbytes>=0.46"
TRACKIO_DEPENDENCY = "trackio>=0.43"
REPORT_TO = ("none", "trackio")
# Defaults for a real model, from TRL 1.16's SFTConfig/DPOConfig/GRPOConfig (learning rate, batch 8,
# max_length 1024, 8 generations of up to 512 tokens) and ModelConfig (LoRA r 16, alpha 32). LoRA trains
# at 10x the full fine-tuning rate, as TRL's example scripts do (SFT 2e-5 -> 2e-4, DPO 5e-7 -> 5e-6).
# TRL trains 3 epochs by default; a step budget instead lets preflight estimate time and cost.
DEFAULT_LEARNING_RATE = {"sft": 2e-5, "dpo": 1e-6, "grpo": 1e-6}
DEFAULT_LORA_LEARNING_RATE = {"sft": 2e-4, "dpo": 1e-5, "grpo": 1e-5}
DEFAULT_BATCH_SIZE = 8
DEFAULT_MAX_STEPS = 150
DEFAULT_MAX_LENGTH = 1024
DEFAULT_LORA_R = 16
DEFAULT_LOGGING_STEPS = 5
DEFAULT_BETA = {"dpo": 0.1, "grpo": 0.0}  # TRL's defaults; GRPO's KL term is off at 0
DEFAULT_NUM_GENERATIONS = 8
DEFAULT_MAX_COMPLETION_LENGTH = 512
LEARNING_RATE_RANGE = (1e-7, 1e-1)
# Settings only some methods use: the tool refuses them elsewhere and other scripts' CONFIG leaves them out.
METHOD_FIELDS = {
    "max_length": ("sft", "dpo"),
    "packing": ("sft",),
    "beta": ("dpo", "grpo"),
    "num_generations": ("grpo",),
    "max_completion_length": ("grpo",),
    "reward_functions": ("grpo",),
    "custom_reward_code": ("grpo",),
    "use_vllm": ("grpo",),
}
LOCAL_DATA_SUFFIXES = (".jsonl", ".json")


def _per_method(values: dict) -> str:
    """'sft 2e-05, dpo/grpo 1e-06' for a {method: value} table, as the tool's input help shows defaults."""
    methods: dict[str, list[str]] = {}
    for method, value in values.items():
        methods.setdefault(f"{value:g}", []).append(method)
    return ", ".join(f"{'/'.join(names)} {value}" for value, names in methods.items())


@dataclass
class TrainingConfig:
    """Everything a training script needs; rendered verbatim into the script's CONFIG (the custom reward
    code goes into the script as code instead). A field with a "help" is an input of write_training_script:
    `config_inputs` derives its type, description and default from the field."""

    model: str = field(metadata={"help": "Hub model id or local model folder"})
    dataset: str = field(metadata={"help": "Hub dataset id or local .jsonl/.json file or folder"})
    output_dir: str = field(metadata={"help": "Checkpoint folder (default: the run's)"})
    method: str = field(default="sft", metadata={"help": '"sft", "dpo" or "grpo"'})
    dataset_split: str = field(default="train", metadata={"help": "Split to train on"})
    dataset_config: str | None = field(default=None, metadata={"help": "Dataset config (subset), e.g. main"})
    max_steps: int = field(default=DEFAULT_MAX_STEPS, metadata={"help": "Optimizer steps"})
    num_train_epochs: float = 1.0
    learning_rate: float | None = field(default=None, metadata={"help": (
        f"Peak LR; default {_per_method(DEFAULT_LEARNING_RATE)}; LoRA {_per_method(DEFAULT_LORA_LEARNING_RATE)}")})
    per_device_train_batch_size: int = field(default=DEFAULT_BATCH_SIZE, metadata={"help": "Per-device batch size"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-batches per step"})
    max_length: int = field(default=DEFAULT_MAX_LENGTH, metadata={"help": "SFT/DPO: max tokens per example"})
    packing: bool = field(default=False, metadata={"help": "SFT: pack examples into max_length blocks"})
    lora: bool = field(default=False, metadata={"help": "Train LoRA adapters (merged when saved)"})
    qlora: bool = field(default=False, metadata={"help": "LoRA on a 4-bit base; CUDA only"})
    lora_r: int = field(default=DEFAULT_LORA_R, metadata={"help": "LoRA rank"})
    lora_alpha: int = 2 * DEFAULT_LORA_R
    lora_target_modules: str | list[str] = "all-linear"
    beta: float | None = field(default=None, metadata={"help": (
        f"DPO/GRPO KL strength; default {_per_method(DEFAULT_BETA)}")})
    num_generations: int = field(default=DEFAULT_NUM_GENERATIONS, metadata={"help": (
        "GRPO completions per prompt, dividing batch x accumulation")})
    max_completion_length: int = field(default=DEFAULT_MAX_COMPLETION_LENGTH,
                                       metadata={"help": "GRPO tokens per completion"})
    reward_functions: list[str] = field(default_factory=list, metadata={"help": (
        f"GRPO library rewards: {library_listing(brief=True)}")})
    custom_reward_code: str | None = field(default=None, metadata={"help": (
        "GRPO: one `def f(completions, **kwargs) -> list[float]` (columns as kwargs; imports: "
        "re, math, json, string, collections)")})
    use_vllm: bool = field(default=False, metadata={"help": "GRPO on a GPU: generate with vLLM"})
    logging_steps: int = DEFAULT_LOGGING_STEPS
    seed: int = 42
    report_to: str = field(default="none", metadata={"help": '"trackio" if the user asks'})
    push_to_hub: bool = False
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub repo to push to (needed on HF Jobs)"})

    def __post_init__(self):
        if self.beta is None and self.method in DEFAULT_BETA:
            self.beta = DEFAULT_BETA[self.method]
        self.lora = self.lora or self.qlora
        if self.learning_rate is None and self.method in SUPPORTED_METHODS:
            self.learning_rate = default_learning_rate(self.method, self.lora)

    def to_dict(self) -> dict:
        return asdict(self)


def default_learning_rate(method: str, lora: bool) -> float:
    """TRL's learning rate for `method` (full fine-tuning), or ten times it for LoRA adapters."""
    return (DEFAULT_LORA_LEARNING_RATE if lora else DEFAULT_LEARNING_RATE)[method]


INPUT_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "list": "array"}
REQUIRED_INPUTS = ("model", "dataset")


def config_inputs(*names: str) -> dict:
    """smolagents tool inputs for the named TrainingConfig fields: the type from the field's annotation, the
    description from its help plus its default (when it has one worth saying)."""
    fields_by_name = {f.name: f for f in fields(TrainingConfig)}
    inputs = {}
    for name in names:
        f = fields_by_name[name]
        default = "" if f.default in (MISSING, None, False) else f" (default {f.default})"
        inputs[name] = {"type": INPUT_TYPES[f.type.split("|")[0].split("[")[0].strip()],
                        "description": f"{f.metadata['help'].rstrip('.')}{default}."}
        if name not in REQUIRED_INPUTS:
            inputs[name]["nullable"] = True
    return inputs


def script_config(config: TrainingConfig) -> dict:
    """The CONFIG literal's values: the fields `config.method` uses."""
    return {k: v for k, v in config.to_dict().items()
            if k != "custom_reward_code" and config.method in METHOD_FIELDS.get(k, SUPPORTED_METHODS)}


def render_training_script(config: TrainingConfig, title: str | None = None) -> str:
    """The full text of a PEP 723 uv script that trains `config` with TRL."""
    if config.method not in SUPPORTED_METHODS:
        raise ValueError(f"unsupported method {config.method!r}; supported: {SUPPORTED_METHODS}")
    dependencies = list(PINNED_DEPENDENCIES)
    if config.use_vllm:
        dependencies[0] = TRL_VLLM_DEPENDENCY
    if config.qlora:
        dependencies.append(QLORA_DEPENDENCY)
    if config.report_to == "trackio":
        dependencies.append(TRACKIO_DEPENDENCY)
    literal = "{\n" + "".join(f"    {k!r}: {v!r},\n" for k, v in script_config(config).items()) + "}"
    title = title or f"{config.method.upper()} of {config.model} on {config.dataset}"
    source, names = "", []
    if config.method == "grpo":
        source, names = reward_source(config.reward_functions), list(config.reward_functions)
        if config.custom_reward_code:
            name = custom_reward_name(config.custom_reward_code)
            if name is None:
                raise ValueError("custom_reward_code must define exactly one fn(completions, **kwargs)")
            source, names = f"{source}\n\n{config.custom_reward_code.strip()}\n", [*names, name]
        if not names:
            raise ValueError("GRPO needs at least one reward function")
    return render_script(method=config.method, dependencies=dependencies, title=title, config_literal=literal,
                         reward_source=source, reward_names=names)


@cache
def script_names() -> frozenset[str]:
    """Top-level names a training script defines or imports, which custom reward code must not redefine."""
    config = TrainingConfig(model="m", dataset="d", output_dir="o", method="grpo", reward_functions=list(LIBRARY))
    names = set()
    for node in ast.parse(render_training_script(config)).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return frozenset(names)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_script(text: str) -> None:
    """Raise ToolError unless `text` is valid Python."""
    try:
        ast.parse(text)
    except SyntaxError as exc:
        raise ToolError(f"the training script does not parse: line {exc.lineno}: {exc.msg}") from exc


def is_local_path(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~")) or value.endswith(LOCAL_DATA_SUFFIXES) \
        or Path(value).exists()


def held_out_split(ctx: ToolContext, dataset: str, split: str, config: str | None) -> str | None:
    """Why training on this split would train on evaluation data (tools/data/held_out.py), or None."""
    source = "local" if looks_local(ctx, dataset) else "hub"
    return evaluation_split(LoadedRows(dataset, source, config or "", split, [], None, ""))


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def method_settings(method: str, given: dict, batch: int, accumulation: int) -> dict:
    """Check the method-specific inputs (None = not given) and return the TrainingConfig fields they set."""
    for name, value in given.items():
        if value not in (None, []) and method not in METHOD_FIELDS[name]:
            hint = " (GRPO bounds completions with max_completion_length)" if name == "max_length" else ""
            raise ToolError(f"{name} applies only to {'/'.join(METHOD_FIELDS[name]).upper()}, not "
                            f"{method.upper()}{hint}: drop it.")
    settings = {}
    beta = given["beta"]
    if beta is not None:
        if not (math.isfinite(float(beta)) and float(beta) >= 0 and (method == "grpo" or float(beta) > 0)):
            raise ToolError(f"beta {beta} is invalid: DPO needs beta > 0 (typical 0.1), GRPO beta >= 0 (0 turns "
                            "the KL penalty off; 0.001-0.04 keeps the policy near the base model).")
        settings["beta"] = float(beta)
    if given.get("packing"):
        settings["packing"] = True
    if given.get("use_vllm"):
        settings["use_vllm"] = True
    if method != "grpo":
        return settings
    names = list(dict.fromkeys(given["reward_functions"] or []))
    unknown = [n for n in names if n not in LIBRARY]
    if unknown:
        raise ToolError(f"unknown reward functions {unknown}. The library has:\n{library_listing()}\nor write your "
                        "own and pass it as custom_reward_code.")
    code = given["custom_reward_code"]
    if not names and not code:
        raise ToolError(f"GRPO needs at least one reward function: pass reward_functions from the library:\n"
                        f"{library_listing()}\nand/or your own as custom_reward_code "
                        "(def my_reward(completions, **kwargs) -> list[float]).")
    if code:
        _, problems = check_custom_reward(code, reserved=script_names())
        if problems:
            listed = "\n".join(f"({i}) {p}" for i, p in enumerate(problems, 1))
            raise ToolError(f"custom_reward_code was refused:\n{listed}\nFix these and call write_training_script "
                            "again.")
    generations = DEFAULT_NUM_GENERATIONS if given["num_generations"] is None else int(given["num_generations"])
    if generations < 2:
        raise ToolError(f"num_generations must be at least 2 (GRPO compares completions within a group), got "
                        f"{generations}.")
    if (batch * accumulation) % generations:
        raise ToolError(f"GRPO samples num_generations={generations} completions per prompt, so "
                        f"per_device_train_batch_size x gradient_accumulation_steps ({batch} x {accumulation}) must "
                        f"be a multiple of it: e.g. per_device_train_batch_size={generations}.")
    settings.update(num_generations=generations, reward_functions=names, custom_reward_code=code,
                    max_completion_length=int(given["max_completion_length"] or DEFAULT_MAX_COMPLETION_LENGTH))
    return settings


class WriteTrainingScriptTool(Tool):
    name = "write_training_script"
    description = """Write and record a TRL training script for one run; starts nothing. \
Columns: SFT messages | prompt+completion | text; DPO prompt/chosen/rejected; GRPO prompt + what rewards read.
Returns {"run_id", "script_path", "output_dir", "config", "warning"?}; then smoke_run and preflight_check it.
Example: run = write_training_script(model="Qwen/Qwen3-0.6B", dataset="trl-lib/Capybara", lora=True)"""
    inputs = {
        **config_inputs("model", "dataset", "dataset_split", "dataset_config", "method", "learning_rate",
                        "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps", "lora", "qlora",
                        "lora_r", "max_length", "packing", "beta", "num_generations", "max_completion_length",
                        "reward_functions", "custom_reward_code", "use_vllm", "report_to", "output_dir",
                        "hub_model_id"),
        "allow_eval_split": {"type": "boolean", "description": (
                             "Allow an eval split (a benchmark's, or one named test); recorded."),
                             "nullable": True},
        "parent_run_id": {"type": "integer", "description": "Run this one refines.", "nullable": True},
        "change": {"type": "string", "description": 'What changed from the parent, e.g. "lr 2e-5 -> 1e-5".',
                   "nullable": True},
    }
    output_type = "object"

    def __init__(self, ctx: ToolContext):
        self.ctx = ctx
        super().__init__()

    def forward(self, model: str, dataset: str, dataset_split: str | None = None, dataset_config: str | None = None,
                method: str | None = None, learning_rate: float | None = None,
                max_steps: int | None = None, per_device_train_batch_size: int | None = None,
                gradient_accumulation_steps: int | None = None, lora: bool | None = None,
                qlora: bool | None = None, lora_r: int | None = None, max_length: int | None = None,
                packing: bool | None = None, beta: float | None = None, num_generations: int | None = None,
                max_completion_length: int | None = None, reward_functions: list[str] | None = None,
                custom_reward_code: str | None = None, use_vllm: bool | None = None, report_to: str | None = None,
                output_dir: str | None = None, hub_model_id: str | None = None,
                parent_run_id: int | None = None, change: str | None = None,
                allow_eval_split: bool | None = False) -> dict:
        method = (method or "sft").strip().lower()
        if method not in SUPPORTED_METHODS:
            raise ToolError(f"unknown method {method!r}; supported methods: {', '.join(SUPPORTED_METHODS)}.")
        lr = default_learning_rate(method, bool(lora or qlora)) if learning_rate is None else float(learning_rate)
        if not (math.isfinite(lr) and LEARNING_RATE_RANGE[0] <= lr <= LEARNING_RATE_RANGE[1]):
            raise ToolError(f"learning_rate {lr} is outside the sane range {LEARNING_RATE_RANGE}; typical values "
                            "are 1e-5..5e-5 for full fine-tuning and 1e-4..5e-4 with LoRA.")
        for label, value in (("max_steps", max_steps), ("per_device_train_batch_size", per_device_train_batch_size),
                             ("gradient_accumulation_steps", gradient_accumulation_steps), ("lora_r", lora_r),
                             ("max_length", max_length), ("num_generations", num_generations),
                             ("max_completion_length", max_completion_length)):
            if value is not None and int(value) < 1:
                raise ToolError(f"{label} must be a positive integer, got {value}.")
        if isinstance(reward_functions, str):
            reward_functions = [reward_functions]
        report_to = (report_to or "none").strip().lower()
        if report_to not in REPORT_TO:
            raise ToolError(f"report_to must be one of {', '.join(REPORT_TO)}, got {report_to!r}.")
        batch = int(per_device_train_batch_size or DEFAULT_BATCH_SIZE)
        accumulation = int(gradient_accumulation_steps or 1)
        extra = method_settings(method, {"max_length": max_length, "packing": packing or None, "beta": beta,
                                         "num_generations": num_generations,
                                         "max_completion_length": max_completion_length,
                                         "reward_functions": reward_functions,
                                         "custom_reward_code": custom_reward_code,
                                         "use_vllm": use_vllm or None}, batch, accumulation)
        remote = self.ctx.settings.resolved_compute_backend == "hf-jobs"
        if qlora and not remote and not cuda_available():
            raise ToolError("qlora needs a CUDA GPU (bitsandbytes 4-bit does not run on CPU) and this machine has "
                            "none: use lora=True here, or switch the compute backend to HF Jobs and submit with a "
                            "GPU flavor (e.g. a10g-small).")
        if use_vllm and not remote and not cuda_available():
            raise ToolError("use_vllm needs a CUDA GPU (vLLM does not run on CPU) and this machine has none: drop "
                            "use_vllm here (GRPO generates with transformers), or use HF Jobs with a GPU flavor.")
        dataset, model = self._check_source("dataset", dataset, remote), self._check_source("model", model, remote)
        held_out = held_out_split(self.ctx, dataset, (dataset_split or "train").strip(), dataset_config)
        if held_out and not allow_eval_split:
            raise ToolError(f"Refused: {held_out}. A model trained on evaluation data scores high on it without "
                            "being better. Train on the train split (dataset_split='train'), or pass "
                            "allow_eval_split=True only if this data will never be used to evaluate (the override "
                            "is recorded in the run's config).")
        admission = admit_training(self.ctx, model, dataset, (dataset_split or "train").strip(), dataset_config)
        if output_dir is not None and not remote:
            output_dir = str(resolve_inside(self.ctx, output_dir, "output_dir", write=True))
        if parent_run_id is not None and self.ctx.ledger.get_run(int(parent_run_id), user=self.ctx.user) is None:
            raise ToolError(f"parent_run_id {parent_run_id} is not a run in the ledger; omit it or pass an "
                            "existing run_id.")

        ledger = self.ctx.ledger
        run_id = ledger.create_run(method, model, dataset, experiment_id=self.ctx.current_experiment(),
                                   parent_run_id=parent_run_id, change=change, status=CREATED, user=self.ctx.user)
        run_dir = self.ctx.data_area("runs").resolve() / str(run_id)
        if output_dir is None:
            output_dir = f"outputs/run-{run_id}" if remote else str(run_dir / "checkpoint")
        rank, steps = int(lora_r or DEFAULT_LORA_R), int(max_steps or DEFAULT_MAX_STEPS)
        config = TrainingConfig(
            model=model, dataset=dataset, dataset_split=(dataset_split or "train").strip(),
            dataset_config=(dataset_config or "").strip() or None, output_dir=output_dir, method=method,
            learning_rate=lr, max_steps=steps, logging_steps=max(1, min(DEFAULT_LOGGING_STEPS, steps // 2)),
            per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation,
            max_length=int(max_length or DEFAULT_MAX_LENGTH),
            lora=bool(lora), qlora=bool(qlora), lora_r=rank, lora_alpha=2 * rank, report_to=report_to,
            push_to_hub=bool(hub_model_id), hub_model_id=hub_model_id, **extra)
        script = render_training_script(config, title=f"Run {run_id}: {method.upper()} of {model} on {dataset}")
        check_script(script)
        run_dir.mkdir(parents=True, exist_ok=True)
        script_path = run_dir / "train.py"
        try:
            with script_path.open("x") as handle:
                handle.write(script)
        except FileExistsError as exc:
            raise ToolError(f"{script_path} already exists and a training script never overwrites one: the data "
                            f"directory holds a stale run {run_id}; move {run_dir} away and write the run "
                            "again.") from exc
        save_admission(run_dir, admission)
        recorded = {**config.to_dict(), **({"eval_split_override": {"reason": held_out, "allow_eval_split": True}}
                                           if held_out else {})}
        ledger.update_run(run_id, script_path=str(script_path), script_sha256=sha256_text(script),
                          config_json=json.dumps(recorded), output_dir=output_dir)
        result = {"run_id": run_id, "script_path": str(script_path), "output_dir": output_dir, "config": recorded}
        if remote and not hub_model_id:
            result["warning"] = ("This run goes to HF Jobs, whose disk is discarded when the job ends: pass "
                                 "hub_model_id to keep the trained model.")
        self.ctx.emit("run_created", {"run_id": run_id, "method": method, "model": model, "dataset": dataset,
                                      "change": change, "parent_run_id": parent_run_id})
        return result

    def _check_source(self, kind: str, value: str, remote: bool) -> str:
        value = (value or "").strip()
        if not value:
            raise ToolError(f"{kind} is empty: pass a Hub id or a local path.")
        if looks_local(self.ctx, value):
            path = resolve_inside(self.ctx, value, f"the local {kind}")
            if kind == "dataset" and path.is_file() and path.suffix not in LOCAL_DATA_SUFFIXES:
                raise ToolError(f"local dataset {value!r} must be a .jsonl or .json file (or a folder of them).")
            if remote:
                raise ToolError(f"the {kind} {value!r} is a local path but jobs run on HF Jobs, which cannot see "
                                f"this machine's files: push it to the Hub first and pass its Hub id.")
            return str(path)
        if not is_hub_id(value):
            raise ToolError(f"{kind} {value!r} is neither an existing local path nor a Hub id like 'owner/name'.")
        return value
