"""The text of the training scripts tools/training/scripts.py renders.

One shared body (dataset loading, LoRA/QLoRA, training arguments, metric lines, saving, merging,
pushing, smoke-run overrides) and one `build_trainer` per method; GRPO scripts also embed their
reward functions. `<MARKERS>` are replaced by `render_script`, so the templates stay plain Python.
"""

from __future__ import annotations

HEADER = '''\
# /// script
# requires-python = ">=3.10"
# dependencies = [
<DEPENDENCIES>
# ]
# ///
"""<TITLE>

Written by ml-intern. Run it with `uv run train.py` (or any Python that has the pinned packages).
It prints `METRIC {json}` every `logging_steps` and `TRAINING_DONE {json}` when the model is saved.
On a machine with several GPUs it runs itself once per GPU under `accelerate launch` (DDP, or FSDP when
ML_INTERN_LAUNCH says so: submit_job passes preflight's plan) and prints `SETTINGS {json}`, the
launch and the GPU fast paths it switched on (also saved as ml_intern_settings.json next to the model).
For a quick check, ML_INTERN_SMOKE_MODEL=<model folder> trains that (tiny) model instead, with short
sequences and no push; ML_INTERN_MAX_STEPS, ML_INTERN_MAX_ROWS and ML_INTERN_OUTPUT_DIR cap the steps
and the dataset rows and move the output.
"""

import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import datasets
import torch
import transformers
from datasets import load_dataset
from transformers import TrainerCallback
from trl import <TRL_IMPORTS>

CONFIG = <CONFIG>
'''

REWARDS = '''

# Reward functions: fn(completions, **kwargs) -> list[float]; dataset columns arrive as keyword arguments.
<REWARD_SOURCE>

REWARD_FUNCTIONS = [<REWARD_NAMES>]
'''

BODY = '''

class PrintMetrics(TrainerCallback):
    """Print each log as one `METRIC {json}` line the job tools parse."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:
            return
        numbers = {k: v for k, v in (logs or {}).items() if isinstance(v, (int, float))}
        row = {"step": state.global_step, "max_steps": state.max_steps, **numbers}
        print("METRIC " + json.dumps(row), flush=True)


VLLM_PORT = 8000


def launch_plan(cfg):
    """How the run spreads over this machine: submit_job's plan (ML_INTERN_LAUNCH, from preflight) or, run by
    hand, DDP over every visible GPU (GRPO with vLLM keeps the last GPU for the vLLM server)."""
    plan = json.loads(os.environ.get("ML_INTERN_LAUNCH") or "{}")
    gpus = torch.cuda.device_count()
    server = bool(cfg.get("use_vllm")) and gpus > 1
    plan.setdefault("num_processes", gpus - 1 if server else max(gpus, 1))
    plan.setdefault("strategy", "ddp" if plan["num_processes"] > 1 else "single")
    plan["vllm_server"] = server
    return plan


def accelerate_command(plan):
    """`accelerate launch` of this script, one process per GPU, with TRL's own accelerate config: multi_gpu
    (DDP) or fsdp2 (FSDP2: parameters, gradients and optimizer state sharded). With "cpu" (tests), torchrun's
    launcher starts gloo processes: accelerate's own --cpu starts one process unless MPI is set up."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(plan["num_processes"])]
    if plan.get("cpu"):
        command += ["--multi_gpu", "--mixed_precision", "no"]
    else:
        from importlib import resources

        name = "fsdp2" if plan["strategy"] == "fsdp" else "multi_gpu"
        command += ["--config_file", str(resources.files("trl.accelerate_configs").joinpath(f"{name}.yaml")),
                    "--mixed_precision", "bf16" if torch.cuda.is_bf16_supported() else "no"]
    return command + [os.path.abspath(__file__)]


def relaunch(cfg):
    """Run this script once per process under `accelerate launch` (for GRPO with vLLM on several GPUs, next to a
    `trl vllm-serve` on the last GPU); the exit code, or None when this process trains by itself."""
    if "LOCAL_RANK" in os.environ or os.environ.get("ML_INTERN_LAUNCHED"):
        return None
    plan = launch_plan(cfg)
    if plan["num_processes"] <= 1:
        return None
    env, server = {**os.environ, "ML_INTERN_LAUNCHED": "1"}, None
    if plan["vllm_server"]:
        gpus = torch.cuda.device_count()
        server = subprocess.Popen([sys.executable, "-m", "trl.cli.main", "vllm-serve", "--model", cfg["model"],
                                   "--port", str(VLLM_PORT)], env={**env, "CUDA_VISIBLE_DEVICES": str(gpus - 1)})
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(gpus - 1))
    print("LAUNCH " + json.dumps(plan), flush=True)
    try:
        return subprocess.run(accelerate_command(plan), env=env).returncode
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)


def fast_paths(cfg, plan):
    """The GPU speed-ups this run uses, each only where it applies (none on CPU): bf16; attention kernels from the
    Hub's `kernels` package (FlashAttention 3 on Hopper, 2 on Ampere and later) where it is installed; Liger
    kernels where installed; gradient checkpointing unless preflight found the run fits without it; padding-free
    batches (TRL's BFD packing); vLLM generation for GRPO (colocated on one GPU, a server across several)."""
    cuda = torch.cuda.is_available()
    major = torch.cuda.get_device_capability()[0] if cuda else 0
    hub_kernels = cuda and major >= 8 and transformers.utils.is_kernels_available()
    flash = ("kernels-community/vllm-flash-attn3" if major == 9 else "kernels-community/flash-attn2")
    return {
        "bf16": cuda and torch.cuda.is_bf16_supported(),
        "attn_implementation": flash if hub_kernels else None,
        "use_liger_kernel": cuda and importlib.util.find_spec("liger_kernel") is not None,
        "gradient_checkpointing": cuda and plan.get("gradient_checkpointing", True),
        "padding_free": bool(cfg.get("packing")),
        "vllm_mode": (("server" if plan["vllm_server"] else "colocate") if cfg.get("use_vllm") and cuda else None),
    }


def apply_overrides(cfg):
    """The run's config with the ML_INTERN_* environment overrides of a smoke run applied; under several
    processes, each accumulates fewer micro-batches so the global batch stays the config's where it divides."""
    env, cfg = os.environ, dict(cfg)
    world = int(env.get("WORLD_SIZE") or 1)
    if world > 1 and cfg["gradient_accumulation_steps"] % world == 0:
        cfg["gradient_accumulation_steps"] //= world
    if env.get("ML_INTERN_MAX_STEPS"):
        cfg["max_steps"] = int(env["ML_INTERN_MAX_STEPS"])
        cfg["logging_steps"] = min(cfg["logging_steps"], cfg["max_steps"])
    if env.get("ML_INTERN_OUTPUT_DIR"):
        cfg["output_dir"] = env["ML_INTERN_OUTPUT_DIR"]
    if env.get("ML_INTERN_SMOKE_MODEL"):
        cfg.update(model=env["ML_INTERN_SMOKE_MODEL"], push_to_hub=False, report_to="none")
        for key, cap in (("max_length", 128), ("max_completion_length", 16)):
            if key in cfg:
                cfg[key] = min(cfg[key], cap)
        if cfg["qlora"] and not torch.cuda.is_available():
            print("smoke run: no CUDA on this machine, so QLoRA runs as plain LoRA", flush=True)
            cfg["qlora"] = False
    return cfg


def load_train_dataset(cfg):
    max_rows = int(os.environ.get("ML_INTERN_MAX_ROWS") or 0)
    source = Path(cfg["dataset"])
    if source.is_dir():
        files = sorted(str(p) for p in source.iterdir() if p.suffix in (".jsonl", ".json"))
        named = [f for f in files if Path(f).stem == cfg["dataset_split"]]
        dataset = load_dataset("json", data_files=named or files, split="train")
    elif source.is_file():
        dataset = load_dataset("json", data_files=str(source), split="train")
    elif source.suffix in (".jsonl", ".json") or cfg["dataset"].startswith(("/", "./", "../", "~")):
        raise FileNotFoundError(f"the local dataset {cfg['dataset']} does not exist")
    elif max_rows:  # stream only the rows a smoke run needs
        rows = load_dataset(cfg["dataset"], cfg["dataset_config"], split=cfg["dataset_split"], streaming=True)
        return datasets.Dataset.from_list(list(rows.take(max_rows)))
    else:
        dataset = load_dataset(cfg["dataset"], cfg["dataset_config"], split=cfg["dataset_split"])
    return dataset.select(range(min(max_rows, len(dataset)))) if max_rows else dataset


def lora_and_quantization(cfg):
    """The PEFT LoRA config (LoRA and QLoRA) and the 4-bit NF4 quantization config (QLoRA only)."""
    quantization = None
    if cfg["qlora"]:
        if not torch.cuda.is_available():
            raise RuntimeError("QLoRA needs a CUDA GPU: bitsandbytes 4-bit quantization does not run on CPU. "
                               "Write the run with lora=True instead, or run it on an HF Jobs GPU flavor.")
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                          bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute)
    if not (cfg["lora"] or cfg["qlora"]):
        return None, quantization
    from peft import LoraConfig

    lora = LoraConfig(r=cfg["lora_r"], lora_alpha=cfg["lora_alpha"], lora_dropout=0.0,
                      target_modules=cfg["lora_target_modules"], task_type="CAUSAL_LM")
    return lora, quantization


def training_args(cfg, fast):
    """The arguments every TRL config takes; build_trainer adds the method's own."""
    cuda = torch.cuda.is_available()
    extra = {"use_liger_kernel": True} if fast["use_liger_kernel"] else {}
    if fast["attn_implementation"]:
        extra["model_init_kwargs"] = {"attn_implementation": fast["attn_implementation"]}
    return dict(
        output_dir=cfg["output_dir"],
        max_steps=cfg["max_steps"] or -1,
        num_train_epochs=cfg["num_train_epochs"],
        learning_rate=cfg["learning_rate"],
        per_device_train_batch_size=cfg["per_device_train_batch_size"],
        gradient_accumulation_steps=cfg["gradient_accumulation_steps"],
        logging_steps=cfg["logging_steps"],
        seed=cfg["seed"],
        bf16=fast["bf16"],  # TRL defaults bf16=True, which CPUs cannot run
        use_cpu=not cuda,
        activation_checkpointing=fast["gradient_checkpointing"],
        save_strategy="no",
        report_to=cfg["report_to"],
        disable_tqdm=True,
        **extra,
    )

<BUILD_TRAINER>

def save_model(trainer, cfg, sharded):
    """Save one plain checkpoint, LoRA adapters merged in, that evaluation loads like any model. Under FSDP every
    process takes part in gathering the weights; only the main process writes."""
    model, main_process = trainer.model, trainer.accelerator.is_main_process
    if cfg["qlora"] or (cfg["lora"] and sharded):  # merge the adapters into a 16-bit copy of the base
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        adapter_dir = os.path.join(cfg["output_dir"], "adapter")
        trainer.save_model(adapter_dir)
        if main_process:
            base = AutoModelForCausalLM.from_pretrained(cfg["model"], dtype=torch.bfloat16)
            PeftModel.from_pretrained(base, adapter_dir).merge_and_unload().save_pretrained(cfg["output_dir"])
    elif sharded:
        trainer.save_model(cfg["output_dir"])  # FSDP2 with FULL_STATE_DICT: gathered on the main process
    elif main_process:
        (model.merge_and_unload() if cfg["lora"] else model).save_pretrained(cfg["output_dir"])
    if main_process:
        tokenizer = trainer.processing_class
        getattr(tokenizer, "tokenizer", tokenizer).save_pretrained(cfg["output_dir"])
    trainer.accelerator.wait_for_everyone()


def push_to_hub(cfg):
    from huggingface_hub import HfApi

    api = HfApi(token=os.environ.get("HF_TOKEN"))
    api.create_repo(cfg["hub_model_id"], exist_ok=True, private=True)
    api.upload_folder(folder_path=cfg["output_dir"], repo_id=cfg["hub_model_id"])
    print("PUSHED " + json.dumps({"repo_id": cfg["hub_model_id"]}), flush=True)


def main():
    cfg = apply_overrides(CONFIG)
    code = relaunch(cfg)
    if code is not None:
        sys.exit(code)
    warnings.filterwarnings("ignore", category=FutureWarning)
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    plan = launch_plan(cfg)
    fast = fast_paths(cfg, plan)
    dataset = load_train_dataset(cfg)
    print(f"dataset: {len(dataset)} rows, columns {dataset.column_names}", flush=True)
    peft_config, quantization_config = lora_and_quantization(cfg)
    trainer = build_trainer(cfg, dataset, training_args(cfg, fast), peft_config, quantization_config, fast)
    main_process = trainer.accelerator.is_main_process
    settings = {"launch": {**plan, "world_size": trainer.accelerator.num_processes}, "fast_paths": fast,
                "gradient_accumulation_steps": cfg["gradient_accumulation_steps"]}
    if main_process:
        print("SETTINGS " + json.dumps(settings), flush=True)
    result = trainer.train()
    save_model(trainer, cfg, sharded=plan["strategy"] == "fsdp")
    if main_process:
        Path(cfg["output_dir"], "ml_intern_settings.json").write_text(json.dumps(settings, indent=1))
    if main_process and cfg["push_to_hub"] and cfg["hub_model_id"]:
        push_to_hub(cfg)
    if main_process:
        print("TRAINING_DONE " + json.dumps({"output_dir": cfg["output_dir"], "global_step": result.global_step,
                                             "train_loss": result.training_loss}), flush=True)


if __name__ == "__main__":
    main()
'''

# Per method: the TRL classes to import and `build_trainer(cfg, dataset, args, peft_config, quantization_config,
# fast)`; `fast` is fast_paths().
TRAINERS = {
    "sft": ("SFTConfig, SFTTrainer", '''
def build_trainer(cfg, dataset, args, peft_config, quantization_config, fast):
    """SFT: learn the completions (or whole texts / assistant turns) by next-token prediction."""
    args = SFTConfig(**args, max_length=cfg["max_length"], packing=cfg.get("packing", False))
    return SFTTrainer(model=cfg["model"], args=args, train_dataset=dataset, peft_config=peft_config,
                      quantization_config=quantization_config, callbacks=[PrintMetrics()])
'''),
    "dpo": ("DPOConfig, DPOTrainer", '''
def build_trainer(cfg, dataset, args, peft_config, quantization_config, fast):
    """DPO: prefer `chosen` over `rejected`; with LoRA the frozen base serves as the reference model."""
    args = DPOConfig(**args, max_length=cfg["max_length"], beta=cfg["beta"])
    return DPOTrainer(model=cfg["model"], args=args, train_dataset=dataset, peft_config=peft_config,
                      quantization_config=quantization_config, callbacks=[PrintMetrics()])
'''),
    "grpo": ("GRPOConfig, GRPOTrainer", '''
def vllm_args(fast):
    """GRPOConfig's vLLM settings: none without vLLM, the local server in server mode."""
    if not fast["vllm_mode"]:
        return {}
    if fast["vllm_mode"] == "server":
        return dict(use_vllm=True, vllm_mode="server", vllm_server_base_url=f"http://localhost:{VLLM_PORT}",
                    vllm_server_timeout=900)
    return dict(use_vllm=True, vllm_mode="colocate")

def build_trainer(cfg, dataset, args, peft_config, quantization_config, fast):
    """GRPO: sample num_generations completions per prompt and reinforce those the rewards score higher; with
    vLLM generating them when fast["vllm_mode"] is set."""
    args = GRPOConfig(**args, beta=cfg["beta"], num_generations=cfg["num_generations"],
                      max_completion_length=cfg["max_completion_length"], **vllm_args(fast))
    return GRPOTrainer(model=cfg["model"], reward_funcs=REWARD_FUNCTIONS, args=args, train_dataset=dataset,
                       peft_config=peft_config, quantization_config=quantization_config,
                       callbacks=[PrintMetrics()])
'''),
}


def render_script(*, method: str, dependencies: list[str], title: str, config_literal: str,
                  reward_source: str = "", reward_names: list[str] | None = None) -> str:
    """Assemble a script: header and CONFIG, the reward functions (GRPO), the shared body, the method's trainer."""
    trl_imports, build_trainer = TRAINERS[method]
    text = (HEADER.replace("<DEPENDENCIES>", "\n".join(f'#     "{dep}",' for dep in dependencies))
            .replace("<TITLE>", title).replace("<TRL_IMPORTS>", trl_imports).replace("<CONFIG>", config_literal))
    if reward_names:
        text += REWARDS.replace("<REWARD_NAMES>", ", ".join(reward_names)).replace(
            "<REWARD_SOURCE>", reward_source.strip("\n"))
    return text + BODY.replace("<BUILD_TRAINER>", build_trainer)
