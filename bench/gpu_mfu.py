"""GPU check: tokens/s and MFU of the generated SFT script's training configuration, on a model of Qwen3-1.7B's
shape with random weights and synthetic tokens, full fine-tuning and LoRA, packing on. Needs no network.

    python -m bench.gpu_mfu              # one CUDA GPU, about 3-5 minutes
    python -m bench.gpu_mfu --dry-run    # tiny shape on CPU, a few steps: checks that every path runs
    python -m bench.gpu_mfu --no-trl     # force the plain transformers loop

MFU = 6 x parameters (embeddings included) x tokens/s / the bf16 peak this GPU reaches on a large matmul in
the same run (LoRA does about 4/6 of those FLOPs, so its figure reads low by that much). Tokens/s counts
the tokens between the first and last logged step after warm-up, timed as the lines arrive.

With trl, datasets, peft and smolagents importable, each variant is the real script from
tools/training/scripts.py run as a subprocess (its SETTINGS line says which fast paths it switched on). A
GPU machine with torch and transformers but not those, and no network, needs their wheels carried in. On a
machine with network, from the repository root:

    pip download --dest wheels trl==1.16.0 datasets==5.2.0 peft==0.21.2 accelerate==1.15.0 smolagents
    rm wheels/torch-* wheels/nvidia_* wheels/triton-*      # the GPU machine has its own torch

carry `wheels` along, and on the GPU machine `pip install --no-index --find-links wheels trl datasets peft
smolagents`. Without trl the bench trains with a plain transformers loop with the same settings (fp32
weights under bf16 autocast as TRL loads them, fused AdamW, the same learning rate, batch, packed
max_length blocks with per-document positions, gradient checkpointing as preflight's memory plan says,
LoRA r=16 on every linear layer of the decoder).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QWEN3_1_7B = dict(hidden_size=2048, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
                  head_dim=128, intermediate_size=6144, vocab_size=151936, tie_word_embeddings=True,
                  max_position_embeddings=40960, rope_theta=1_000_000.0, rms_norm_eps=1e-6)
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            intermediate_size=128, vocab_size=1024, tie_word_embeddings=True, max_position_embeddings=512)
GPU_RUN = dict(steps=40, warmup=10, logging_steps=5, batch=8, max_length=2048, docs=4000, matmul=8192)
DRY_RUN = dict(steps=6, warmup=2, logging_steps=1, batch=2, max_length=128, docs=200, matmul=1024)
LEARNING_RATE = {"full": 2e-5, "lora": 2e-4}  # scripts.DEFAULT_LEARNING_RATE / DEFAULT_LORA_LEARNING_RATE for SFT
LORA_R = 16


def measure_peak_tflops(size: int, device: str) -> float:
    """TFLOPs of a size x size matmul chain (bf16 on GPU, fp32 on CPU), best of a few timed repeats."""
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    repeats, best = 20 if device == "cuda" else 3, 0.0
    for _ in range(3):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - start) / 1e12)
    return best


def build_model(folder: Path, shape: dict) -> int:
    """Save a Qwen3 model of `shape` with random weights (bf16) and a small tokenizer; return its parameters."""
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    from evals.tiny_model import build_tiny_model

    tokenizer = AutoTokenizer.from_pretrained(build_tiny_model(folder.parent / "tokenizer-source"))
    config = Qwen3Config(**shape, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=None)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def write_tokens(path: Path, vocab: int, docs: int, max_length: int) -> None:
    """Pre-tokenized documents of random lengths (1/8 to 1 x max_length), so packing has work to do."""
    generator = torch.Generator().manual_seed(0)
    with path.open("w") as handle:
        for _ in range(docs):
            length = int(torch.randint(max_length // 8, max_length + 1, (1,), generator=generator))
            ids = torch.randint(0, vocab, (length,), generator=generator).tolist()
            handle.write(json.dumps({"input_ids": ids}) + "\n")


def memory_plan(n_params: int, shape: dict, lora: bool, batch: int, max_length: int) -> dict:
    """Preflight's plan for one local GPU (whether gradient checkpointing is needed)."""
    from tools.backends import hardware

    memory = torch.cuda.get_device_properties(0).total_memory / 2**30 if torch.cuda.is_available() else 0.0
    flavor = hardware.Flavor("local", "this GPU", 1 if memory else 0, memory, 64.0, None, 0.0, "local")
    return hardware.plan_parallelism(n_params, "lora" if lora else "full", max_length, batch, flavor,
                                     hidden_size=shape["hidden_size"], num_layers=shape["num_hidden_layers"],
                                     vocab_size=shape["vocab_size"])


def rate_from_lines(timed_rows: list[tuple[float, dict]], warmup: int) -> float | None:
    """Tokens/s between the first logged step past `warmup` and the last one, from (arrival time, METRIC row)."""
    rows = [(t, r) for t, r in timed_rows if "num_tokens" in r and r["step"] >= warmup]
    if len(rows) < 2:
        return None
    (t0, first), (t1, last) = rows[0], rows[-1]
    return (last["num_tokens"] - first["num_tokens"]) / max(t1 - t0, 1e-9)


def run_script(model_dir: Path, data: Path, work: Path, lora: bool, run: dict, plan: dict) -> dict:
    """Train with the generated SFT script in a subprocess; tokens/s from its METRIC lines as they arrive."""
    from tools.training.scripts import TrainingConfig, render_training_script

    name = "lora" if lora else "full"
    config = TrainingConfig(model=str(model_dir), dataset=str(data), output_dir=str(work / name), lora=lora,
                            lora_r=LORA_R, lora_alpha=2 * LORA_R, packing=True, max_steps=run["steps"],
                            learning_rate=LEARNING_RATE[name], per_device_train_batch_size=run["batch"],
                            max_length=run["max_length"], logging_steps=run["logging_steps"])
    script = work / f"train_{name}.py"
    script.write_text(render_training_script(config, title=f"gpu_mfu {name}"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "ML_INTERN_LAUNCH": json.dumps({"strategy": "single", "num_processes": 1,
                                           "gradient_checkpointing": plan["gradient_checkpointing"]})}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, cwd=work)
    timed, settings, tail = [], None, []
    for line in proc.stdout:
        tail = (tail + [line])[-40:]
        if line.startswith("METRIC "):
            timed.append((time.perf_counter(), json.loads(line[7:])))
        elif line.startswith("SETTINGS "):
            settings = json.loads(line[9:])
    if proc.wait():
        raise RuntimeError(f"the {name} script failed:\n{''.join(tail)}")
    return {"variant": name, "path": "trl script", "tokens_per_s": rate_from_lines(timed, run["warmup"]),
            "settings": settings}


class LoraLinear(torch.nn.Module):
    """base(x) + B(A(x)) * alpha/r with B zero-initialised, as PEFT's LoRA."""

    def __init__(self, base: torch.nn.Linear, r: int):
        super().__init__()
        self.base, self.scale = base, 2.0
        self.lora_a = torch.nn.Linear(base.in_features, r, bias=False, device=base.weight.device)
        self.lora_b = torch.nn.Linear(r, base.out_features, bias=False, device=base.weight.device)
        torch.nn.init.zeros_(self.lora_b.weight)

    def forward(self, x):
        return self.base(x) + self.lora_b(self.lora_a(x)) * self.scale


def add_lora(model, r: int) -> None:
    model.requires_grad_(False)
    targets = [(parent, name, child) for layer in model.model.layers for parent in layer.modules()
               for name, child in parent.named_children() if isinstance(child, torch.nn.Linear)]
    for parent, name, child in targets:
        setattr(parent, name, LoraLinear(child, r))


def packed_batches(data: Path, batch: int, max_length: int):
    """Blocks of max_length tokens from the documents laid end to end, positions restarting per document."""
    ids, positions = [], []
    while True:
        with data.open() as handle:
            for line in handle:
                doc = json.loads(line)["input_ids"][:max_length]
                ids += doc
                positions += range(len(doc))
                while len(ids) >= batch * max_length:
                    take = batch * max_length
                    yield (torch.tensor(ids[:take]).view(batch, max_length),
                           torch.tensor(positions[:take]).view(batch, max_length))
                    ids, positions = ids[take:], positions[take:]


def run_plain_loop(model_dir: Path, data: Path, lora: bool, run: dict, plan: dict, device: str) -> dict:
    """The same training settings without trl: fp32 weights, bf16 autocast, fused AdamW, packed blocks."""
    from transformers import AutoModelForCausalLM

    name = "lora" if lora else "full"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device)
    if lora:
        add_lora(model, LORA_R)
    if plan["gradient_checkpointing"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=LEARNING_RATE[name], fused=device == "cuda")
    batches = packed_batches(data, run["batch"], run["max_length"])
    start, tokens = None, 0
    for step in range(run["steps"]):
        if step == run["warmup"]:
            if device == "cuda":
                torch.cuda.synchronize()
            start, tokens = time.perf_counter(), 0
        input_ids, positions = (t.to(device) for t in next(batches))
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model(input_ids=input_ids, position_ids=positions, labels=input_ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += input_ids.numel()
    if device == "cuda":
        torch.cuda.synchronize()
    rate = tokens / (time.perf_counter() - start)
    settings = {"bf16": device == "cuda", "gradient_checkpointing": plan["gradient_checkpointing"], "packing": True}
    del model, optimizer
    if device == "cuda":
        torch.cuda.empty_cache()
    return {"variant": name, "path": "plain transformers loop", "tokens_per_s": rate, "settings": settings,
            "final_loss": round(float(loss), 4)}


def trl_available() -> bool:
    try:
        import datasets  # noqa: F401
        import peft  # noqa: F401
        import smolagents  # noqa: F401
        import trl  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="tiny shape on CPU, both paths, a few steps")
    parser.add_argument("--no-trl", action="store_true", help="use the plain transformers loop")
    args = parser.parse_args()
    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA GPU here: run with --dry-run for the CPU check")
    run, shape = (DRY_RUN, TINY) if args.dry_run else (GPU_RUN, QWEN3_1_7B)
    paths = ["plain"] if args.no_trl or not trl_available() else ["trl"]
    if args.dry_run and paths == ["trl"]:
        paths.append("plain")
    peak = measure_peak_tflops(run["matmul"], device)
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    print(f"device {gpu}; measured peak {peak:.1f} TFLOPs ({'bf16' if device == 'cuda' else 'fp32'} matmul "
          f"{run['matmul']}^3); paths {paths}", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir, data = work / "model", work / "tokens.jsonl"
        n_params = build_model(model_dir, shape)
        write_tokens(data, shape["vocab_size"], run["docs"], run["max_length"])
        print(f"model: Qwen3 shape {shape['hidden_size']}x{shape['num_hidden_layers']}, {n_params / 1e9:.3f}B "
              f"parameters; batch {run['batch']} x {run['max_length']} tokens, {run['steps']} steps", flush=True)
        for lora in (False, True):
            plan = memory_plan(n_params, shape, lora, run["batch"], run["max_length"])
            for path in paths:
                result = (run_script(model_dir, data, work, lora, run, plan) if path == "trl"
                          else run_plain_loop(model_dir, data, lora, run, plan, device))
                rate = result["tokens_per_s"]
                result.update(n_params=n_params, peak_tflops=round(peak, 1),
                              tokens_per_s=round(rate, 1) if rate else None,
                              mfu=round(6 * n_params * rate / (peak * 1e12), 4) if rate else None)
                results.append(result)
                print(json.dumps(result), flush=True)
    print("\nvariant  path                      tokens/s    MFU")
    for r in results:
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        print(f"{r['variant']:<8} {r['path']:<25} {r['tokens_per_s'] or 0:>9.0f}  {mfu:>6}")


if __name__ == "__main__":
    main()
