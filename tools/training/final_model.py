"""save_final_model: the benchmark run's deliverable, `final_model/`, saved early and replaced only by a better model.

A candidate (the base model itself, or a checkpoint of a run that started from it: tools/training/admission.py) is
exported whole: LoRA adapters merged into the base with PEFT's `merge_and_unload`, safetensors weights, the
tokenizer, its chat template (the base model's when the checkpoint has none) and a generation config. The export
must keep the base model's architecture: the same config (architecture, sizes, vocabulary) and the same weight
names and shapes. It is then scored on the agent's own held-out split (mean loss per completion token, lower is
better; the split must hold no benchmark item and no row the candidate trained on) and replaces `final_model/` only
when it scores better than the model there, on the same split. Every attempt is kept for the audit
(`<data_dir>/final_model.json`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from smolagents import Tool

from tools.audit import write_audit
from tools.context import ToolContext
from tools.errors import ToolError
from tools.paths import looks_local, resolve_inside
from tools.run_rules import FINAL_STATE_FILE
from tools.training.admission import check_clean, check_training_model, same_model

ARCH_FIELDS = ("model_type", "architectures", "hidden_size", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads", "intermediate_size", "vocab_size", "head_dim", "tie_word_embeddings")
MAX_HELD_OUT_ROWS = 256
MAX_TOKENS = 1024
MIN_GAIN = 1e-4  # a new model must lower the held-out loss by at least this much


def state_path(ctx: ToolContext) -> Path:
    return Path(ctx.settings.data_dir) / FINAL_STATE_FILE


def load_state(ctx: ToolContext) -> dict:
    path = state_path(ctx)
    return json.loads(path.read_text()) if path.is_file() else {"held_out": None, "best": None, "attempts": []}


def _config_of(ctx: ToolContext, model: str) -> dict:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model, token=ctx.settings.hf_token).to_dict()


def local_shapes(folder: Path) -> dict[str, list[int]]:
    """Tensor name -> shape of every safetensors file in `folder` (headers only)."""
    from safetensors import safe_open

    shapes = {}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            shapes.update({name: list(handle.get_slice(name).get_shape()) for name in handle.keys()})
    return shapes


def base_shapes(ctx: ToolContext, base: str) -> dict[str, list[int]]:
    if Path(base).is_dir():
        return local_shapes(Path(base))
    from tools.backends.hub import hf_api

    metadata = hf_api(ctx.settings).get_safetensors_metadata(base)
    return {name: list(info.shape) for file in metadata.files_metadata.values() for name, info in file.tensors.items()}


def architecture_problems(ctx: ToolContext, folder: Path) -> list[str]:
    """How the exported model in `folder` differs from the base model's architecture (empty when it does not)."""
    base = ctx.rules.base_model
    base_config, config = _config_of(ctx, base), json.loads((folder / "config.json").read_text())
    problems = [f"config {name}: base {base_config.get(name)!r}, this model {config.get(name)!r}"
                for name in ARCH_FIELDS if base_config.get(name) != config.get(name)]
    expected, found = base_shapes(ctx, base), local_shapes(folder)
    tied = bool(base_config.get("tie_word_embeddings"))
    names = (set(expected) | set(found)) - ({"lm_head.weight"} if tied else set())
    for name in sorted(names):
        if expected.get(name) != found.get(name):
            problems.append(f"weight {name}: base {expected.get(name)}, this model {found.get(name)}")
    return problems[:20]


def export_model(ctx: ToolContext, source: str, out: Path) -> list[str]:
    """Write `source` to `out` as a complete final model; returns notes (what was taken from the base model)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    base, token, notes = ctx.rules.base_model, ctx.settings.hf_token, []
    folder = Path(source)
    if (folder / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(source, dtype="auto", token=token).merge_and_unload()
        notes.append("LoRA adapters merged into the base weights (PEFT merge_and_unload)")
    else:
        model = AutoModelForCausalLM.from_pretrained(source, dtype="auto", token=token)
    model.save_pretrained(out)
    has_tokenizer = any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json"))
    tokenizer = AutoTokenizer.from_pretrained(source if has_tokenizer else base, token=token)
    if not has_tokenizer:
        notes.append("tokenizer taken from the base model")
    if tokenizer.chat_template is None and has_tokenizer:
        template = AutoTokenizer.from_pretrained(base, token=token).chat_template
        if template is not None:
            tokenizer.chat_template = template
            notes.append("chat template taken from the base model")
    if tokenizer.chat_template is None:
        notes.append("no chat template: the base model has none")
    tokenizer.save_pretrained(out)
    if not (out / "generation_config.json").is_file():
        try:
            generation = GenerationConfig.from_pretrained(source if (folder / "generation_config.json").is_file()
                                                          else base, token=token)
        except OSError:
            generation = GenerationConfig.from_model_config(model.config)
        generation.save_pretrained(out)
    del model
    return notes


MODEL_FILES = ("*.json", "*.safetensors", "*.jinja", "*.model", "*.txt", "*.tiktoken")


def copy_base_model(ctx: ToolContext, out: Path) -> list[str]:
    """Copy the base model's files to `out` as they are (no torch: fast, for a run that saved no final model)."""
    base = ctx.rules.base_model
    if Path(base).is_dir():
        out.mkdir(parents=True, exist_ok=True)
        for pattern in MODEL_FILES:
            for file in Path(base).glob(pattern):
                shutil.copy2(file, out / file.name)
    else:
        from huggingface_hub import snapshot_download

        snapshot_download(base, local_dir=out, allow_patterns=list(MODEL_FILES), token=ctx.settings.hf_token,
                          endpoint=ctx.settings.hf_endpoint)
    return ["the base model's files, copied: no model was saved"]


def completion_pairs(rows: list[dict], tokenizer) -> list[tuple[str, str]]:
    """(prompt, completion) texts of prompt-completion or messages rows."""
    def text(turns) -> str:
        if isinstance(turns, str):
            return turns
        if tokenizer.chat_template:
            return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        return "\n".join(str(t.get("content", "")) for t in turns) + "\n"

    pairs = []
    for row in rows:
        if "prompt" in row and "completion" in row:
            completion = row["completion"]
            reply = completion if isinstance(completion, str) else "".join(str(t.get("content", ""))
                                                                           for t in completion)
            pairs.append((text(row["prompt"]), reply))
        elif isinstance(row.get("messages"), list) and len(row["messages"]) > 1:
            pairs.append((text(row["messages"][:-1]), str(row["messages"][-1].get("content", ""))))
    if not pairs:
        raise ToolError("the held-out split has no prompt/completion or messages rows to score; make one with "
                        "reformat_dataset(..., target_format=\"prompt-completion\", test_size=0.1) and pass its "
                        "folder with held_out_split=\"test\".")
    return pairs


def held_out_loss(folder: Path, rows: list[dict]) -> float:
    """Mean loss per completion token of the model in `folder` on `rows` (prompt tokens not counted)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    model.to(device).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for prompt, completion in completion_pairs(rows, tokenizer):
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            reply_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
            ids = (prompt_ids + reply_ids)[-MAX_TOKENS:]
            scored = min(len(reply_ids), len(ids) - 1)
            if scored < 1:
                continue
            input_ids = torch.tensor([ids], device=device)
            logits = model(input_ids).logits[0, :-1].float()
            losses = torch.nn.functional.cross_entropy(logits, input_ids[0, 1:], reduction="none")
            total += float(losses[-scored:].sum())
            count += scored
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    if not count:
        raise ToolError("no completion tokens to score in the held-out split.")
    return round(total / count, 6)


def _digest(rows: list[dict]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()


def _trained_rows(ctx: ToolContext, lineage: list[dict]) -> set[str]:
    from tools.data.rows import load_rows, row_text

    texts = set()
    for run in lineage:
        config = json.loads(run.get("config_json") or "{}")
        try:
            loaded = load_rows(ctx, run["dataset"], config=config.get("dataset_config"),
                               split=config.get("dataset_split") or "train", limit=10**6)
        except ToolError:
            continue
        texts |= {row_text(r) for r in loaded.rows}
    return texts


class SaveFinalModelTool(Tool):
    name = "save_final_model"
    description = """Save final_model/ (what the benchmark scores): merged safetensors, tokenizer, chat template,
generation config. Save the base model early so one always exists; later ones replace it only when they score better
on your own held-out split (loss per completion token; never the benchmark's test data), the same split every time.
Returns {"replaced", "held_out_loss", "best", "final_model", "notes"}.
Example: save_final_model(model=run["output_dir"], held_out=data["path"], held_out_split="test")"""
    inputs = {
        "model": {"type": "string", "description": "The base model, or a checkpoint folder of a run trained from it."},
        "held_out": {"type": "string", "description": "Your held-out data (local folder or file, prompt-completion or "
                     "messages), e.g. the test split reformat_dataset(test_size=...) wrote."},
        "held_out_split": {"type": "string", "description": "Its split (default test).", "nullable": True},
    }
    output_type = "object"

    def __init__(self, ctx: ToolContext):
        super().__init__()
        self.ctx = ctx

    def forward(self, model: str, held_out: str, held_out_split: str | None = "test") -> dict:
        from tools.data.rows import load_rows, row_text

        ctx, rules = self.ctx, self.ctx.rules
        if same_model(model, rules.base_model):
            source = rules.base_model
        else:
            source = str(resolve_inside(ctx, model, "model")) if looks_local(ctx, model) else str(model).strip()
        lineage = check_training_model(ctx, source)
        if source != rules.base_model and not (Path(source) / "config.json").is_file():
            raise ToolError(f"{model} holds no model (no config.json): wait for its run to complete first.")
        split = (held_out_split or "test").strip()
        check = check_clean(ctx, held_out, split=split, purpose="held-out split")
        rows = load_rows(ctx, held_out, split=split, limit=MAX_HELD_OUT_ROWS).rows
        state = load_state(ctx)
        split_id = {"dataset": check["dataset"], "split": split, "rows": len(rows), "sha256": _digest(rows)}
        if state["held_out"] and state["held_out"]["sha256"] != split_id["sha256"]:
            raise ToolError(f"final_model/ was chosen on the held-out split {state['held_out']['dataset']} "
                            f"({state['held_out']['split']}); scores compare only on the same rows: pass it again.")
        overlap = _trained_rows(ctx, lineage) & {row_text(r) for r in rows}
        if overlap:
            raise ToolError(f"{len(overlap)} rows of the held-out split are in this model's training data, so they are "
                            "not held out: split the data with reformat_dataset(test_size=...) and train on its train "
                            "split only.")
        out = rules.workdir / f".final_model.tmp-{os.getpid()}"
        shutil.rmtree(out, ignore_errors=True)
        try:
            notes = export_model(ctx, source, out)
            problems = architecture_problems(ctx, out)
            if problems:
                raise ToolError(f"Refused: {model} does not keep the base model's architecture: "
                                f"{'; '.join(problems)}. The final model must be the base model, fine-tuned.")
            loss = held_out_loss(out, rows)
            best = state["best"]
            replaced = best is None or loss < best["held_out_loss"] - MIN_GAIN
            attempt = {"model": source, "run_id": lineage[0]["id"] if lineage else None,
                       "run_ids": [r["id"] for r in lineage], "held_out_loss": loss, "replaced": replaced,
                       "at": time.time(), "notes": notes}
            if replaced:
                self._install(out)
                state["best"] = attempt
            state["held_out"] = state["held_out"] or {**split_id, "decontamination": check}
        finally:
            shutil.rmtree(out, ignore_errors=True)
        state["attempts"].append(attempt)
        state_path(ctx).write_text(json.dumps(state, indent=1))
        write_audit(ctx)
        ctx.emit("notice", {"text": f"final_model/ {'replaced by' if replaced else 'kept; not better:'} {source} "
                                    f"(held-out loss {loss:.4f})", "final_model": str(rules.final_dir)})
        return {"replaced": replaced, "held_out_loss": loss, "best": state["best"], "final_model": str(rules.final_dir),
                "notes": notes}

    def _install(self, out: Path) -> None:
        final = self.ctx.rules.final_dir
        old = final.with_name(f".final_model.old-{os.getpid()}")
        if final.exists():
            final.rename(old)
        out.rename(final)
        shutil.rmtree(old, ignore_errors=True)
