"""Training scripts: render a TRL run from a config into a PEP 723 uv script, and the tool that
writes one for the agent.

The script is a fixed template plus a `CONFIG = {...}` literal at its top, so the same file runs
with `uv run train.py` on HF Jobs and with the app's own interpreter locally, and two runs differ
exactly where their configs differ. It prints machine-readable lines the job tools parse:

    METRIC {"step": 10, "max_steps": 150, "loss": 2.31, "learning_rate": 0.003, ...}
    TRAINING_DONE {"output_dir": "...", "global_step": 150, "train_loss": 1.2}
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from smolagents import Tool

from tools.context import ToolContext
from tools.errors import ToolError

SUPPORTED_METHODS = ("sft",)
PINNED_DEPENDENCIES = (
    "trl==1.16.0",
    "transformers==5.24.0",
    "peft==0.21.2",
    "datasets==5.2.0",
    "accelerate==1.15.0",
    "torch",
)
# Defaults that train the tiny test model well in seconds; real models want e.g. lr 2e-5 (full)
# or 2e-4 (LoRA), batch 8 and a step budget sized to the dataset.
DEFAULT_LEARNING_RATE = 3e-3
DEFAULT_BATCH_SIZE = 16
DEFAULT_MAX_STEPS = 150
DEFAULT_MAX_LENGTH = 512
DEFAULT_LORA_R = 16
LEARNING_RATE_RANGE = (1e-7, 1e-1)
LOCAL_DATA_SUFFIXES = (".jsonl", ".json")
HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


@dataclass
class TrainingConfig:
    """Everything a training script needs; rendered verbatim into the script's CONFIG."""

    model: str
    dataset: str
    output_dir: str
    method: str = "sft"
    dataset_split: str = "train"
    max_steps: int = DEFAULT_MAX_STEPS
    num_train_epochs: float = 1.0
    learning_rate: float = DEFAULT_LEARNING_RATE
    per_device_train_batch_size: int = DEFAULT_BATCH_SIZE
    max_length: int = DEFAULT_MAX_LENGTH
    lora: bool = False
    lora_r: int = DEFAULT_LORA_R
    lora_alpha: int = 2 * DEFAULT_LORA_R
    lora_target_modules: str | list[str] = "all-linear"
    logging_steps: int = 5
    seed: int = 42
    push_to_hub: bool = False
    hub_model_id: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


SCRIPT_TEMPLATE = '''\
# /// script
# requires-python = ">=3.10"
# dependencies = [
{dependencies}
# ]
# ///
"""{title}

Written by ml-intern. Run it with `uv run train.py` (or any Python that has the pinned packages).
It prints `METRIC {{json}}` every `logging_steps` and `TRAINING_DONE {{json}}` when the model is saved.
"""

import json
import os
import warnings
from pathlib import Path

import datasets
import torch
import transformers
from datasets import load_dataset
from transformers import TrainerCallback
from trl import SFTConfig, SFTTrainer

CONFIG = {config}


class PrintMetrics(TrainerCallback):
    """Print each log as one `METRIC {{json}}` line the job tools parse."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        numbers = {{k: v for k, v in (logs or {{}}).items() if isinstance(v, (int, float))}}
        row = {{"step": state.global_step, "max_steps": state.max_steps, **numbers}}
        print("METRIC " + json.dumps(row), flush=True)


def load_train_dataset(cfg):
    source = Path(cfg["dataset"])
    if source.is_dir():
        files = sorted(str(p) for p in source.iterdir() if p.suffix in (".jsonl", ".json"))
        named = [f for f in files if Path(f).stem == cfg["dataset_split"]]
        return load_dataset("json", data_files=named or files, split="train")
    if source.is_file():
        return load_dataset("json", data_files=str(source), split="train")
    return load_dataset(cfg["dataset"], split=cfg["dataset_split"])


def main():
    cfg = CONFIG
    warnings.filterwarnings("ignore", category=FutureWarning)
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    cuda = torch.cuda.is_available()
    dataset = load_train_dataset(cfg)
    print(f"dataset: {{len(dataset)}} rows, columns {{dataset.column_names}}", flush=True)
    peft_config = None
    if cfg["lora"]:
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg["lora_r"], lora_alpha=cfg["lora_alpha"], lora_dropout=0.0,
                                 target_modules=cfg["lora_target_modules"], task_type="CAUSAL_LM")
    args = SFTConfig(
        output_dir=cfg["output_dir"],
        max_steps=cfg["max_steps"] or -1,
        num_train_epochs=cfg["num_train_epochs"],
        learning_rate=cfg["learning_rate"],
        per_device_train_batch_size=cfg["per_device_train_batch_size"],
        max_length=cfg["max_length"],
        logging_steps=cfg["logging_steps"],
        seed=cfg["seed"],
        bf16=cuda and torch.cuda.is_bf16_supported(),
        use_cpu=not cuda,
        activation_checkpointing=cuda,  # saves memory on GPU; slows tiny CPU runs
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )
    trainer = SFTTrainer(model=cfg["model"], args=args, train_dataset=dataset,
                         peft_config=peft_config, callbacks=[PrintMetrics()])
    result = trainer.train()

    model = trainer.model
    if cfg["lora"]:
        model = model.merge_and_unload()  # a plain checkpoint that evaluation loads like any model
    model.save_pretrained(cfg["output_dir"])
    tokenizer = trainer.processing_class
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    tokenizer.save_pretrained(cfg["output_dir"])
    if cfg["push_to_hub"] and cfg["hub_model_id"]:
        from huggingface_hub import HfApi

        api = HfApi(token=os.environ.get("HF_TOKEN"))
        api.create_repo(cfg["hub_model_id"], exist_ok=True, private=True)
        api.upload_folder(folder_path=cfg["output_dir"], repo_id=cfg["hub_model_id"])
        print("PUSHED " + json.dumps({{"repo_id": cfg["hub_model_id"]}}), flush=True)
    print("TRAINING_DONE " + json.dumps({{"output_dir": cfg["output_dir"], "global_step": result.global_step,
                                          "train_loss": result.training_loss}}), flush=True)


if __name__ == "__main__":
    main()
'''


def render_training_script(config: TrainingConfig, title: str | None = None) -> str:
    """The full text of a PEP 723 uv script that trains `config` with TRL."""
    if config.method not in SUPPORTED_METHODS:
        raise ValueError(f"unsupported method {config.method!r}; supported: {SUPPORTED_METHODS}")
    dependencies = "\n".join(f'#     "{dep}",' for dep in PINNED_DEPENDENCIES)
    literal = "{\n" + "".join(f"    {k!r}: {v!r},\n" for k, v in config.to_dict().items()) + "}"
    title = title or f"{config.method.upper()} of {config.model} on {config.dataset}"
    return SCRIPT_TEMPLATE.format(dependencies=dependencies, title=title, config=literal)


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


class WriteTrainingScriptTool(Tool):
    name = "write_training_script"
    description = """Write a TRL training script for one run and record the run in the experiment ledger.
It does not start training: pass the returned run_id to submit_job.

Inputs:
- model: Hub model id (e.g. "Qwen/Qwen3-1.7B") or a local model folder.
- dataset: Hub dataset id, or a local .jsonl/.json file or folder of them. Rows must be in a format
  TRL's SFTTrainer reads: {"prompt", "completion"}, {"messages": [...]} or {"text"}.
- method: training method; only "sft" is supported for now.
- learning_rate, max_steps, per_device_train_batch_size, max_length: training hyperparameters
  (defaults suit a tiny model; for a real model use e.g. lr 2e-5 full fine-tuning or 2e-4 with LoRA).
- lora: train LoRA adapters (merged into the saved checkpoint) instead of all weights; lora_r is their rank.
- output_dir: where the final checkpoint is saved (default: the run's own folder).
- hub_model_id: push the trained model to this Hub repo (needed to keep the model from a HF Jobs run).
- parent_run_id, change: the run this one refines and what changed, e.g. "lr 3e-3 -> 1e-3".

Returns a dict: {"run_id", "script_path", "output_dir", "config"}.

Example:
    run = write_training_script(model="Qwen/Qwen3-0.6B", dataset="trl-lib/Capybara", learning_rate=2e-4,
                                max_steps=500, lora=True, change="first try")
    job = submit_job(run_id=run["run_id"])"""
    inputs = {
        "model": {"type": "string", "description": "Hub model id or local model folder."},
        "dataset": {"type": "string", "description": "Hub dataset id or local .jsonl/.json file or folder."},
        "method": {"type": "string", "description": 'Training method; "sft" (default).', "nullable": True},
        "learning_rate": {"type": "number", "description": f"Peak learning rate (default {DEFAULT_LEARNING_RATE}).",
                          "nullable": True},
        "max_steps": {"type": "integer", "description": f"Optimizer steps (default {DEFAULT_MAX_STEPS}).",
                      "nullable": True},
        "per_device_train_batch_size": {"type": "integer", "nullable": True,
                                        "description": f"Batch size per device (default {DEFAULT_BATCH_SIZE})."},
        "lora": {"type": "boolean", "description": "Train LoRA adapters instead of all weights (default False).",
                 "nullable": True},
        "lora_r": {"type": "integer", "description": f"LoRA rank (default {DEFAULT_LORA_R}).", "nullable": True},
        "max_length": {"type": "integer", "description": f"Max tokens per example (default {DEFAULT_MAX_LENGTH}).",
                       "nullable": True},
        "output_dir": {"type": "string", "description": "Where to save the checkpoint (default: the run folder).",
                       "nullable": True},
        "hub_model_id": {"type": "string", "description": "Hub repo to push the trained model to.",
                         "nullable": True},
        "parent_run_id": {"type": "integer", "description": "The run this one refines, if any.", "nullable": True},
        "change": {"type": "string", "description": "What changed compared to the parent run.", "nullable": True},
    }
    output_type = "object"

    def __init__(self, ctx: ToolContext):
        self.ctx = ctx
        super().__init__()

    def forward(self, model: str, dataset: str, method: str | None = None, learning_rate: float | None = None,
                max_steps: int | None = None, per_device_train_batch_size: int | None = None,
                lora: bool | None = None, lora_r: int | None = None, max_length: int | None = None,
                output_dir: str | None = None, hub_model_id: str | None = None,
                parent_run_id: int | None = None, change: str | None = None) -> dict:
        method = (method or "sft").lower()
        if method not in SUPPORTED_METHODS:
            raise ToolError(f"method {method!r} is not supported yet; supported methods: "
                            f"{', '.join(SUPPORTED_METHODS)}.")
        lr = DEFAULT_LEARNING_RATE if learning_rate is None else float(learning_rate)
        if not (math.isfinite(lr) and LEARNING_RATE_RANGE[0] <= lr <= LEARNING_RATE_RANGE[1]):
            raise ToolError(f"learning_rate {lr} is outside the sane range {LEARNING_RATE_RANGE}; typical values "
                            "are 1e-5..5e-5 for full fine-tuning and 1e-4..5e-4 with LoRA.")
        for label, value in (("max_steps", max_steps), ("per_device_train_batch_size", per_device_train_batch_size),
                             ("lora_r", lora_r), ("max_length", max_length)):
            if value is not None and int(value) < 1:
                raise ToolError(f"{label} must be a positive integer, got {value}.")
        remote = self.ctx.settings.resolved_compute_backend == "hf-jobs"
        dataset, model = self._check_source("dataset", dataset, remote), self._check_source("model", model, remote)
        if parent_run_id is not None and self.ctx.ledger.get_run(int(parent_run_id)) is None:
            raise ToolError(f"parent_run_id {parent_run_id} is not a run in the ledger; omit it or pass an "
                            "existing run_id.")

        ledger = self.ctx.ledger
        run_id = ledger.create_run(method, model, dataset, experiment_id=self.ctx.current_experiment(),
                                   parent_run_id=parent_run_id, change=change, status="created")
        run_dir = Path(self.ctx.settings.data_dir).resolve() / "runs" / str(run_id)
        if output_dir is None:
            output_dir = f"outputs/run-{run_id}" if remote else str(run_dir / "checkpoint")
        rank = int(lora_r or DEFAULT_LORA_R)
        config = TrainingConfig(
            model=model, dataset=dataset, output_dir=output_dir, method=method, learning_rate=lr,
            max_steps=int(max_steps or DEFAULT_MAX_STEPS),
            per_device_train_batch_size=int(per_device_train_batch_size or DEFAULT_BATCH_SIZE),
            max_length=int(max_length or DEFAULT_MAX_LENGTH), lora=bool(lora), lora_r=rank,
            lora_alpha=2 * rank, push_to_hub=bool(hub_model_id), hub_model_id=hub_model_id)
        script = render_training_script(config, title=f"Run {run_id}: {method.upper()} of {model} on {dataset}")
        check_script(script)
        run_dir.mkdir(parents=True, exist_ok=True)
        script_path = run_dir / "train.py"
        script_path.write_text(script)
        ledger.update_run(run_id, script_path=str(script_path), script_sha256=sha256_text(script),
                          config_json=json.dumps(config.to_dict()), output_dir=output_dir)
        result = {"run_id": run_id, "script_path": str(script_path), "output_dir": output_dir,
                  "config": config.to_dict()}
        if remote and not hub_model_id:
            result["warning"] = ("This run goes to HF Jobs, whose disk is discarded when the job ends: pass "
                                 "hub_model_id to keep the trained model.")
        self.ctx.emit("run_created", {"run_id": run_id, "method": method, "model": model, "dataset": dataset,
                                      "change": change, "parent_run_id": parent_run_id})
        return result

    @staticmethod
    def _check_source(kind: str, value: str, remote: bool) -> str:
        value = (value or "").strip()
        if not value:
            raise ToolError(f"{kind} is empty: pass a Hub id or a local path.")
        if is_local_path(value):
            path = Path(value).expanduser()
            if not path.exists():
                raise ToolError(f"local {kind} {value!r} does not exist; check the path or pass a Hub id.")
            if kind == "dataset" and path.is_file() and path.suffix not in LOCAL_DATA_SUFFIXES:
                raise ToolError(f"local dataset {value!r} must be a .jsonl or .json file (or a folder of them).")
            if remote:
                raise ToolError(f"the {kind} {value!r} is a local path but jobs run on HF Jobs, which cannot see "
                                f"this machine's files: push it to the Hub first and pass its Hub id.")
            return str(path.resolve())
        if not HUB_ID.match(value):
            raise ToolError(f"{kind} {value!r} is neither an existing local path nor a Hub id like 'owner/name'.")
        return value

