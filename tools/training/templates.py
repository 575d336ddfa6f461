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
For a quick check, ML_INTERN_SMOKE_MODEL=<model folder> trains that (tiny) model instead, with short
sequences and no push; ML_INTERN_MAX_STEPS, ML_INTERN_MAX_ROWS and ML_INTERN_OUTPUT_DIR cap the steps
and the dataset rows and move the output.
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
        numbers = {k: v for k, v in (logs or {}).items() if isinstance(v, (int, float))}
        row = {"step": state.global_step, "max_steps": state.max_steps, **numbers}
        print("METRIC " + json.dumps(row), flush=True)


def apply_overrides(cfg):
    """The run's config with the ML_INTERN_* environment overrides of a smoke run applied."""
    env, cfg = os.environ, dict(cfg)
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


def training_args(cfg):
    """The arguments every TRL config takes; build_trainer adds the method's own."""
    cuda = torch.cuda.is_available()
    return dict(
        output_dir=cfg["output_dir"],
        max_steps=cfg["max_steps"] or -1,
        num_train_epochs=cfg["num_train_epochs"],
        learning_rate=cfg["learning_rate"],
        per_device_train_batch_size=cfg["per_device_train_batch_size"],
        gradient_accumulation_steps=cfg["gradient_accumulation_steps"],
        logging_steps=cfg["logging_steps"],
        seed=cfg["seed"],
        bf16=cuda and torch.cuda.is_bf16_supported(),  # TRL defaults bf16=True, which CPUs cannot run
        use_cpu=not cuda,
        activation_checkpointing=cuda,  # saves memory on GPU; slows tiny CPU runs
        save_strategy="no",
        report_to=cfg["report_to"],
        disable_tqdm=True,
    )

<BUILD_TRAINER>

def save_model(trainer, cfg):
    """Save a plain checkpoint, LoRA adapters merged in, that evaluation loads like any model."""
    model = trainer.model
    if cfg["qlora"]:  # 4-bit weights cannot absorb the adapters exactly: merge into a 16-bit copy of the base
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        adapter_dir = os.path.join(cfg["output_dir"], "adapter")
        model.save_pretrained(adapter_dir)
        base = AutoModelForCausalLM.from_pretrained(cfg["model"], dtype=torch.bfloat16)
        model = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    elif cfg["lora"]:
        model = model.merge_and_unload()
    model.save_pretrained(cfg["output_dir"])
    tokenizer = trainer.processing_class
    getattr(tokenizer, "tokenizer", tokenizer).save_pretrained(cfg["output_dir"])


def push_to_hub(cfg):
    from huggingface_hub import HfApi

    api = HfApi(token=os.environ.get("HF_TOKEN"))
    api.create_repo(cfg["hub_model_id"], exist_ok=True, private=True)
    api.upload_folder(folder_path=cfg["output_dir"], repo_id=cfg["hub_model_id"])
    print("PUSHED " + json.dumps({"repo_id": cfg["hub_model_id"]}), flush=True)


def main():
    cfg = apply_overrides(CONFIG)
    warnings.filterwarnings("ignore", category=FutureWarning)
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    dataset = load_train_dataset(cfg)
    print(f"dataset: {len(dataset)} rows, columns {dataset.column_names}", flush=True)
    peft_config, quantization_config = lora_and_quantization(cfg)
    trainer = build_trainer(cfg, dataset, training_args(cfg), peft_config, quantization_config)
    result = trainer.train()
    save_model(trainer, cfg)
    if cfg["push_to_hub"] and cfg["hub_model_id"]:
        push_to_hub(cfg)
    print("TRAINING_DONE " + json.dumps({"output_dir": cfg["output_dir"], "global_step": result.global_step,
                                         "train_loss": result.training_loss}), flush=True)


if __name__ == "__main__":
    main()
'''

# Per method: the TRL classes to import and `build_trainer(cfg, dataset, args, peft_config, quantization_config)`.
TRAINERS = {
    "sft": ("SFTConfig, SFTTrainer", '''
def build_trainer(cfg, dataset, args, peft_config, quantization_config):
    """SFT: learn the completions (or whole texts / assistant turns) by next-token prediction."""
    args = SFTConfig(**args, max_length=cfg["max_length"], packing=cfg.get("packing", False))
    return SFTTrainer(model=cfg["model"], args=args, train_dataset=dataset, peft_config=peft_config,
                      quantization_config=quantization_config, callbacks=[PrintMetrics()])
'''),
    "dpo": ("DPOConfig, DPOTrainer", '''
def build_trainer(cfg, dataset, args, peft_config, quantization_config):
    """DPO: prefer `chosen` over `rejected`; with LoRA the frozen base serves as the reference model."""
    args = DPOConfig(**args, max_length=cfg["max_length"], beta=cfg["beta"])
    return DPOTrainer(model=cfg["model"], args=args, train_dataset=dataset, peft_config=peft_config,
                      quantization_config=quantization_config, callbacks=[PrintMetrics()])
'''),
    "grpo": ("GRPOConfig, GRPOTrainer", '''
def build_trainer(cfg, dataset, args, peft_config, quantization_config):
    """GRPO: sample num_generations completions per prompt and reinforce those the rewards score higher."""
    args = GRPOConfig(**args, beta=cfg["beta"], num_generations=cfg["num_generations"],
                      max_completion_length=cfg["max_completion_length"])
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
