"""Hardware flavors, training memory and time estimates, and the smallest flavor that fits.

`list_hardware(settings)` asks the Hub (`GET /api/jobs/hardware` through `HfApi.list_jobs_hardware`)
and falls back to `BUILTIN_FLAVORS`, whose prices are approximate. `estimate_memory_gb` follows
the usual rule of thumb (see DOMAIN.md, Compute): full fine-tuning with AdamW in bf16 needs
~18 bytes per parameter (bf16 weights and grads, fp32 master weights and two Adam moments) plus
activations; LoRA keeps the frozen weights in bf16 (2 bytes/param) and trains ~1% extra
parameters at r=16; QLoRA keeps them in 4 bit (~0.55 bytes/param with quantization constants).
`plan_parallelism` applies it per GPU (DDP, or FSDP sharding over a multi-GPU flavor) and
`tokens_per_second` turns a GPU model's throughput (seeded, or measured by finished runs) into run time.
"""

from __future__ import annotations

import json
import math
import re
import struct
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from tools.backends.hub import hf_api
from tools.settings import Settings

BYTES_PER_PARAM = {"full": 18.0, "lora": 2.0, "qlora": 0.55}
ADAPTER_FRACTION_AT_R16 = 0.01  # LoRA r=16 on all linear layers adds ~1% trainable parameters
ADAPTER_BYTES = 16.0  # adapters train like full weights: weights, grads, fp32 master, Adam moments
OVERHEAD_GB = 1.5  # CUDA context, allocator fragmentation, kernels
DEFAULT_VOCAB = 128_000  # current model families use 128k-152k token vocabularies
GPU_HEADROOM = 0.9  # plan to use at most 90% of a GPU's memory
RAM_HEADROOM = 0.8
# Training FLOPs per token ≈ k × parameters: 6 for full (forward 2, backward 4); LoRA skips weight
# gradients (~4); QLoRA also dequantizes (~5). Methods multiply it: DPO runs chosen + rejected and a
# reference model, GRPO spends most of its time generating.
FLOPS_PER_PARAM_TOKEN = {"full": 6.0, "lora": 4.0, "qlora": 5.0}
METHOD_COST = {"sft": 1.0, "dpo": 2.7, "grpo": 4.0}
APPROXIMATE = "built-in table (approximate prices; the Hub's hardware list was unreachable)"


@dataclass
class Flavor:
    """One kind of hardware a job can run on: what preflight checks, backends list and costs are priced from."""

    name: str
    pretty_name: str
    gpus: int  # 0 for CPU flavors
    gpu_memory_gb: float  # per GPU; 0 for CPU flavors
    ram_gb: float
    price_per_hour: float | None  # USD
    effective_tflops: float  # sustained bf16 training throughput of the whole flavor (peak × ~35%)
    source: str = "hub"

    @property
    def is_gpu(self) -> bool:
        return self.gpus > 0

    @property
    def usable_memory_gb(self) -> float:
        """What one training process can use: one GPU's memory, or the RAM on a CPU flavor."""
        return self.gpu_memory_gb * GPU_HEADROOM if self.is_gpu else self.ram_gb * RAM_HEADROOM

    def summary(self) -> str:
        """How a flavor is listed to the LLM: "a10g-largex2 (2x 24 GB, ~$3.00/h)", "cpu-basic (CPU, 16 GB RAM, ...)"."""
        if self.is_gpu:
            memory = f"{self.gpus}x {self.gpu_memory_gb:.0f} GB" if self.gpus > 1 else f"{self.gpu_memory_gb:.0f} GB"
        else:
            memory = f"CPU, {self.ram_gb:.0f} GB RAM"
        price = f"~${self.price_per_hour:.2f}/h" if self.price_per_hour is not None else "price unknown"
        return f"{self.name} ({memory}, {price})"

    def to_dict(self) -> dict:
        return asdict(self)


# name: (pretty name, gpus, GB per GPU, RAM GB, approx. USD/hour, effective TFLOPs for the flavor)
BUILTIN_FLAVORS = {
    "cpu-basic": ("CPU Basic", 0, 0, 16, 0.01, 0.05),
    "cpu-upgrade": ("CPU Upgrade", 0, 0, 32, 0.03, 0.2),
    "t4-small": ("Nvidia T4 - small", 1, 16, 15, 0.40, 15),
    "t4-medium": ("Nvidia T4 - medium", 1, 16, 30, 0.60, 15),
    "l4x1": ("1x Nvidia L4", 1, 24, 30, 0.80, 40),
    "l4x4": ("4x Nvidia L4", 4, 24, 186, 3.80, 160),
    "a10g-small": ("Nvidia A10G - small", 1, 24, 15, 1.00, 25),
    "a10g-large": ("Nvidia A10G - large", 1, 24, 46, 1.50, 25),
    "a10g-largex2": ("2x Nvidia A10G - large", 2, 24, 92, 3.00, 50),
    "a10g-largex4": ("4x Nvidia A10G - large", 4, 24, 184, 5.00, 100),
    "a100-large": ("Nvidia A100 - large", 1, 80, 142, 2.50, 110),
    "h100": ("Nvidia H100", 1, 80, 240, 4.50, 330),
    "h100x8": ("8x Nvidia H100", 8, 80, 1920, 36.00, 2640),
}
# GPU model: (GB per GPU, effective TFLOPs = peak dense bf16 (fp16 on T4) × ~0.35), for Hub flavors.
GPU_SPECS = {"T4": (16, 15), "L4": (24, 40), "A10G": (24, 25), "L40S": (48, 120), "A100": (80, 110),
             "H100": (80, 330), "H200": (141, 330), "RTX PRO 6000": (96, 150)}
CPU_TFLOPS_PER_VCPU = 0.025
# Training tokens/s per GPU for full SFT of a 1B-parameter model in bf16; other sizes and methods scale by FLOPs.
# SEEDED, not measured: the effective TFLOPs above (dense bf16 peak × 35% MFU, typical of published DDP/FSDP
# fine-tuning runs at 30-45%) ÷ 6e9 FLOPs per token. Finished runs in the ledger replace them
# (tools/training/throughput.py); bench/gpu_mfu.py measures one GPU.
SEEDED_TOKENS_PER_S = {model: round(tflops * 1e12 / 6e9) for model, (_, tflops) in GPU_SPECS.items()}
MULTI_GPU_EFFICIENCY = {"ddp": 0.9, "fsdp": 0.8}  # per-GPU throughput kept when several GPUs train together
VLLM_COLOCATE_SHARE = 0.3  # TRL's vllm_gpu_memory_utilization: the share of one GPU vLLM takes in colocate mode


def builtin_flavors() -> list[Flavor]:
    return [Flavor(name, pretty, gpus, mem, ram, price, tflops, APPROXIMATE)
            for name, (pretty, gpus, mem, ram, price, tflops) in BUILTIN_FLAVORS.items()]


def _gb(text) -> float:
    match = re.search(r"([\d.]+)\s*([GMT]i?B)?", str(text or ""))
    if not match:
        return 0.0
    value = float(match.group(1))
    unit = (match.group(2) or "GB")[0]
    return value * {"G": 1, "M": 1 / 1024, "T": 1024}[unit]


def flavor_from_hub(info) -> Flavor:
    """A Flavor from huggingface_hub's JobHardwareInfo (prices per `unit_label`, VRAM as text)."""
    per_hour = {"second": 3600, "minute": 60, "hour": 1}.get(str(info.unit_label).lower())
    price = info.unit_cost_usd * per_hour if per_hour and info.unit_cost_usd is not None else None
    acc = info.accelerator
    if acc is None:
        vcpus = _gb(info.cpu)  # "8 vCPU" -> 8
        return Flavor(info.name, info.pretty_name, 0, 0.0, _gb(info.ram), price, vcpus * CPU_TFLOPS_PER_VCPU)
    gpus = int(_gb(acc.quantity) or 1)
    model = next((m for m in sorted(GPU_SPECS, key=len, reverse=True) if m.lower() in str(acc.model).lower()), None)
    # Memory per GPU from the model when known: the Hub's `vram` text is documented as the total.
    per_gpu, tflops = GPU_SPECS.get(model or "", (_gb(acc.vram) / gpus, 25))
    return Flavor(info.name, info.pretty_name, gpus, per_gpu, _gb(info.ram), price, gpus * tflops)


def _call_with_timeout(fn, timeout_s: float):
    """fn() in a daemon thread, waited on for at most timeout_s: huggingface_hub's session has no timeout."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except Exception as exc:  # handed back to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout_s:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def list_hardware(settings: Settings) -> list[Flavor]:
    """The Hub's Jobs hardware with hourly prices; the built-in table when the Hub cannot answer."""
    try:
        listing = _call_with_timeout(hf_api(settings).list_jobs_hardware, settings.http_timeout_s)
        flavors = [flavor_from_hub(info) for info in listing]
    except Exception:  # any failure (offline, 401, 5xx, odd payload) falls back to the built-in table
        return builtin_flavors()
    return flavors or builtin_flavors()


def estimate_memory_gb(n_params: float, method: str = "full", seq_len: int = 1024, batch_size: int = 1, *,
                       hidden_size: int | None = None, num_layers: int | None = None,
                       vocab_size: int | None = None, lora_r: int = 16,
                       gradient_checkpointing: bool = True, shards: int = 1) -> float:
    """Peak training memory in GB of one process (one GPU) for `method` "full", "lora" or "qlora".

    weights/optimizer: full 18 B/param; LoRA 2 B/param + adapters (1% of params at r=16, 16 B each);
    QLoRA 0.55 B/param + the same adapters. FSDP over `shards` GPUs divides these by `shards` and adds
    two gathered layers (bf16). Activations per token: with gradient checkpointing 4·h·L
    bytes (one bf16 layer input kept per layer) plus one layer recomputed (34·h), without it 34·h·L;
    logits: 6·vocab bytes per token (bf16 logits plus the fp32 copy the loss makes). Unknown shapes
    are guessed from n_params (L ≈ h/128, n_params ≈ 12·L·h²). Plus 1.5 GB of CUDA overhead.
    """
    if method not in BYTES_PER_PARAM:
        raise ValueError(f"unknown method {method!r}: use full, lora or qlora")
    n_params = float(n_params)
    weights = n_params * BYTES_PER_PARAM[method]
    if method != "full":
        weights += n_params * ADAPTER_FRACTION_AT_R16 * (lora_r / 16) * ADAPTER_BYTES
    h = hidden_size or max(64, round((128 * n_params / 12) ** (1 / 3)))
    layers = num_layers or max(2, round(h / 128))
    if shards > 1:
        weights = weights / shards + 2 * 2 * n_params / layers
    per_token = (4 * h * layers + 34 * h) if gradient_checkpointing else 34 * h * layers
    per_token += 6 * (vocab_size or DEFAULT_VOCAB)
    activations = per_token * seq_len * batch_size
    return round((weights + activations) / 1e9 + OVERHEAD_GB, 2)


def gpu_model(flavor: Flavor) -> str | None:
    """The GPU_SPECS model a GPU flavor runs on ("H100" for h100x8), from its names; None for CPU or unknown."""
    if not flavor.is_gpu:
        return None
    names = f"{flavor.pretty_name} {flavor.name}".lower()
    return next((m for m in sorted(GPU_SPECS, key=len, reverse=True) if m.lower() in names), None)


def tokens_per_second(n_params: float, flavor: Flavor, method: str = "full", trainer: str = "sft", *,
                      processes: int | None = None, strategy: str = "ddp",
                      measured: dict[str, float] | None = None) -> tuple[float, str]:
    """Training tokens/s of the whole run and where the figure comes from.

    Per GPU: `measured[gpu model]` (tokens/s of full SFT at 1B parameters, from finished runs) or the seeded
    estimate, scaled to this model size and method by FLOPs, times the processes and the multi-GPU efficiency.
    CPU flavors and unknown GPUs use the flavor's effective TFLOPs."""
    scale = 1e9 / float(n_params) * 6.0 / FLOPS_PER_PARAM_TOKEN.get(method, 6.0) / METHOD_COST.get(trainer, 1.0)
    model = gpu_model(flavor)
    if model is None:
        flops_per_token = FLOPS_PER_PARAM_TOKEN.get(method, 6.0) * float(n_params) * METHOD_COST.get(trainer, 1.0)
        return max(flavor.effective_tflops, 1e-3) * 1e12 / flops_per_token, "flavor's effective TFLOPs (estimate)"
    processes = processes or flavor.gpus
    if measured and model in measured:
        per_gpu, source = measured[model], f"measured on {model} by finished runs"
    else:
        per_gpu, source = SEEDED_TOKENS_PER_S[model], f"seeded estimate for {model} (35% MFU; no finished run yet)"
    efficiency = MULTI_GPU_EFFICIENCY.get(strategy, 1.0) if processes > 1 else 1.0
    return per_gpu * scale * processes * efficiency, source


def estimate_minutes(n_params: float, tokens: float, flavor: Flavor, method: str = "full",
                     trainer: str = "sft", **throughput) -> float:
    """Training time in minutes: tokens ÷ tokens_per_second (which takes `throughput`'s keyword arguments)."""
    rate, _ = tokens_per_second(n_params, flavor, method, trainer, **throughput)
    return tokens / rate / 60


def plan_parallelism(n_params: float, method: str, seq_len: int, batch_size: int, flavor: Flavor, *,
                     vllm: bool = False, reference_model: bool = False, **shape) -> dict:
    """How a run spreads over `flavor`: one process per GPU, DDP when a whole replica (weights, grads,
    optimizer, activations) fits one GPU, FSDP (all of those but activations sharded over the GPUs) when only
    a shard does; gradient checkpointing only when the run does not fit without it. GRPO with vLLM gives the
    vLLM server one GPU of several, or VLLM_COLOCATE_SHARE of a single one; `reference_model` (full DPO) adds a
    frozen bf16 copy of the weights.

    Returns {"strategy": "single" | "ddp" | "fsdp", "num_processes", "memory_gb" (per GPU), "fits",
    "gradient_checkpointing", "reason"}."""
    usable = flavor.usable_memory_gb
    if vllm and flavor.gpus == 1:
        usable -= VLLM_COLOCATE_SHARE * flavor.gpu_memory_gb
    processes = max(1, flavor.gpus - 1 if vllm and flavor.gpus > 1 else flavor.gpus)

    def need(shards: int, checkpointing: bool = True) -> float:
        reference = 2 * float(n_params) / 1e9 / shards if reference_model else 0.0
        return round(estimate_memory_gb(n_params, method, seq_len, batch_size, shards=shards,
                                        gradient_checkpointing=checkpointing, **shape) + reference, 2)

    where = f"{usable:.0f} GB usable per GPU" if flavor.is_gpu else f"{usable:.0f} GB usable RAM"
    replica = need(1)
    if processes == 1:
        strategy, memory = "single", replica
        reason = f"one {'GPU' if flavor.is_gpu else 'CPU process'}: needs ~{replica:.0f} GB of {where}"
    elif replica <= usable or method == "qlora":  # 4-bit weights are not sharded here
        strategy, memory = "ddp", replica
        reason = (f"a whole replica (~{replica:.0f} GB) fits one GPU ({where}): DDP, one process per GPU on "
                  f"{processes} GPUs")
    else:
        strategy, memory = "fsdp", need(processes)
        reason = (f"a whole replica (~{replica:.0f} GB) exceeds one GPU ({where}); sharded over {processes} GPUs "
                  f"it needs ~{memory:.0f} GB per GPU: FSDP")
    shards = processes if strategy == "fsdp" else 1
    checkpointing = flavor.is_gpu and need(shards, checkpointing=False) > usable
    if flavor.is_gpu and not checkpointing:
        memory = need(shards, checkpointing=False)
    return {"strategy": strategy, "num_processes": processes, "memory_gb": memory, "fits": memory <= usable,
            "gradient_checkpointing": checkpointing, "reason": reason}


def suggest(n_params: float, method: str = "full", seq_len: int = 1024, batch_size: int = 1,
            flavors: list[Flavor] | None = None, **shape) -> dict:
    """The cheapest GPU flavor that holds the run (one GPU, or FSDP over a multi-GPU flavor's GPUs); with the
    LoRA/QLoRA options when full fine-tuning does not fit.

    Returns {"method", "memory_gb" (per GPU on the pick, else one replica), "flavor" (name or None),
    "price_per_hour", "fits" (bool), "alternatives": [{"method", "memory_gb", "flavor", "price_per_hour"}]}.
    """
    flavors = flavors if flavors is not None else builtin_flavors()

    def best(m: str) -> dict:
        plans = {f.name: plan_parallelism(n_params, m, seq_len, batch_size, f, **shape) for f in flavors if f.is_gpu}
        fitting = [f for f in flavors if f.is_gpu and plans[f.name]["fits"]]
        pick = min(fitting, key=lambda f: (f.price_per_hour is None, f.price_per_hour or 0, f.gpus), default=None)
        need = plans[pick.name]["memory_gb"] if pick else estimate_memory_gb(n_params, m, seq_len, batch_size,
                                                                             **shape)
        return {"method": m, "memory_gb": need, "flavor": pick.name if pick else None,
                "price_per_hour": pick.price_per_hour if pick else None}

    main = best(method)
    result = {**main, "fits": main["flavor"] is not None, "alternatives": []}
    if method == "full" or main["flavor"] is None:
        order = {"full": ("lora", "qlora"), "lora": ("qlora",), "qlora": ()}[method]
        result["alternatives"] = [best(m) for m in order]
    return result


def _safetensors_params(folder: Path) -> int | None:
    """Exact parameter count from the safetensors headers (8-byte length + JSON), without loading weights."""
    total, files = 0, sorted(folder.glob("*.safetensors"))
    for file in files:
        with file.open("rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            if size > 100_000_000:
                return None
            header = json.loads(handle.read(size))
        total += sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
    return total or None


def _params_from_config(cfg: dict) -> int | None:
    """Parameters of a decoder-only transformer from config.json (attention with GQA, gated MLP, embeddings)."""
    cfg = cfg.get("text_config", cfg)
    h, layers, vocab = cfg.get("hidden_size"), cfg.get("num_hidden_layers"), cfg.get("vocab_size")
    if not (h and layers and vocab):
        return None
    heads = cfg.get("num_attention_heads") or max(1, h // 64)
    head_dim = cfg.get("head_dim") or h // heads
    kv = cfg.get("num_key_value_heads") or heads
    inter = cfg.get("intermediate_size") or 4 * h
    attention = h * heads * head_dim * 2 + h * kv * head_dim * 2
    embeddings = vocab * h * (1 if cfg.get("tie_word_embeddings", True) else 2)
    return int(layers * (attention + 3 * h * inter) + embeddings)


def count_parameters(folder: Path) -> tuple[int | None, dict]:
    """(parameters, shape for estimate_memory_gb) of a saved model folder: exact from its safetensors
    headers, else estimated from config.json."""
    cfg = json.loads((folder / "config.json").read_text())
    text = cfg.get("text_config", cfg)
    shape = {k: text[c] for k, c in (("hidden_size", "hidden_size"), ("num_layers", "num_hidden_layers"),
                                      ("vocab_size", "vocab_size")) if text.get(c)}
    return _safetensors_params(folder) or _params_from_config(cfg), shape
