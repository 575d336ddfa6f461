"""Hardware flavors from the (fake) Hub with a built-in fallback; memory and time estimates; suggestions."""

from __future__ import annotations

import json
import time

import pytest

from tests.fakes.hub_api import GRANTED_TOKEN, hub_settings
from tests.fakes.hub_models_api import serve_models_hub
from tools.backends.hardware import (
    APPROXIMATE,
    BUILTIN_FLAVORS,
    builtin_flavors,
    count_parameters,
    estimate_memory_gb,
    estimate_minutes,
    list_hardware,
    suggest,
)
from tools.settings import Settings


def test_list_hardware_reads_the_hub_with_hourly_prices(models_hub, tmp_path):
    settings = hub_settings(models_hub, Settings(data_dir=tmp_path), token=GRANTED_TOKEN)
    flavors = {f.name: f for f in list_hardware(settings)}
    assert models_hub.requests[-1].path == "/api/jobs/hardware"
    assert models_hub.requests[-1].headers["authorization"] == f"Bearer {GRANTED_TOKEN}"
    assert set(flavors) >= {"cpu-basic", "t4-small", "l4x4", "a10g-large", "a100-large", "h200"}
    assert flavors["a100-large"].price_per_hour == pytest.approx(2.5, abs=0.01)
    assert flavors["cpu-basic"].price_per_hour == pytest.approx(0.01, abs=0.001)
    assert flavors["a100-large"].gpu_memory_gb == 80 and flavors["a100-large"].gpus == 1
    assert flavors["l4x4"].gpus == 4 and flavors["l4x4"].gpu_memory_gb == 24  # "96 GB" is the flavor's total
    assert not flavors["cpu-basic"].is_gpu and flavors["cpu-basic"].ram_gb == 16
    assert all(f.source == "hub" for f in flavors.values())


def test_list_hardware_without_token_sends_none(models_hub, tmp_path):
    list_hardware(hub_settings(models_hub, Settings(data_dir=tmp_path), token=None))
    assert "authorization" not in models_hub.requests[-1].headers


@pytest.mark.parametrize("state", [{"hardware_status": 500}, {"hardware_delay_s": 3}])
def test_list_hardware_falls_back_to_the_builtin_table(tmp_path, state):
    server = serve_models_hub(state)
    try:
        settings = hub_settings(server, Settings(data_dir=tmp_path, http_timeout_s=0.5), token=GRANTED_TOKEN)
        start = time.monotonic()
        flavors = list_hardware(settings)
        assert time.monotonic() - start < 2.5
    finally:
        server.close()
    assert {f.name for f in flavors} == set(BUILTIN_FLAVORS)
    assert all(f.source == APPROXIMATE and "approximate" in f.source for f in flavors)


def test_list_hardware_offline_uses_the_builtin_table(tmp_path):
    settings = Settings(data_dir=tmp_path, hf_endpoint="http://127.0.0.1:9", http_timeout_s=2)
    names = [f.name for f in list_hardware(settings)]
    for expected in ("cpu-basic", "cpu-upgrade", "t4-small", "t4-medium", "l4x1", "l4x4", "a10g-small",
                     "a10g-large", "a10g-largex2", "a10g-largex4", "a100-large", "h100", "h100x8"):
        assert expected in names


def test_memory_follows_bytes_per_parameter():
    # weights and optimizer dominate for a 7B model at a short sequence
    full = estimate_memory_gb(7e9, "full", seq_len=128, batch_size=1)
    lora = estimate_memory_gb(7e9, "lora", seq_len=128, batch_size=1)
    qlora = estimate_memory_gb(7e9, "qlora", seq_len=128, batch_size=1)
    assert 7 * 16 < full < 7 * 18 + 6
    assert 7 * 2 < lora < 7 * 2 + 6  # frozen bf16 weights + ~1% adapters with their optimizer state
    assert 7 * 0.5 < qlora < 7 * 0.6 + 6
    assert estimate_memory_gb(1e9, "full", 2048, 8) > estimate_memory_gb(1e9, "full", 2048, 4)
    assert estimate_memory_gb(1e9, "full", 2048, 8, gradient_checkpointing=False) > \
        estimate_memory_gb(1e9, "full", 2048, 8)
    assert estimate_memory_gb(1e9, "lora", 512, 1, lora_r=64) > estimate_memory_gb(1e9, "lora", 512, 1, lora_r=8)
    with pytest.raises(ValueError, match="full, lora or qlora"):
        estimate_memory_gb(1e9, "dora")


def test_suggest_matches_the_rough_fits_of_domain_knowledge():
    small = suggest(1.7e9, "full", 1024, 4)
    assert small["fits"] and small["flavor"] == "a100-large"  # 1-3B full fine-tuning on one 80 GB GPU
    big = suggest(8e9, "full", 1024, 4)
    # 7-13B full fine-tuning fits no single GPU: only FSDP over 8x80 GB, else LoRA on one GPU
    assert big["fits"] and big["flavor"] == "h100x8" and big["memory_gb"] < 80
    assert [(a["method"], a["flavor"]) for a in big["alternatives"]][0] == ("lora", "a100-large")
    huge = suggest(70e9, "full", 1024, 1)
    lora, qlora = huge["alternatives"]
    assert not huge["fits"] and lora["flavor"] == "h100x8"  # 70B: LoRA sharded over 8 GPUs
    assert qlora["flavor"] in ("a100-large", "h100")  # or QLoRA on one
    tiny = suggest(1e8, "full", 512, 8)
    assert tiny["flavor"] == "t4-small"  # the cheapest GPU that holds it
    assert suggest(1.7e9, "lora", 1024, 4)["alternatives"] == []


def test_suggest_shards_over_multi_gpu_flavors_and_skips_cpu_flavors():
    flavors = [f for f in builtin_flavors() if f.name in ("cpu-upgrade", "a10g-largex4", "l4x4")]
    plan = suggest(3e9, "full", 1024, 4, flavors)
    assert plan["flavor"] == "l4x4" and plan["memory_gb"] < 24  # FSDP: a 4th of the states per 24 GB GPU
    assert suggest(3e9, "full", 1024, 4, flavors[:1])["flavor"] is None  # CPU RAM is not a GPU


def test_estimate_minutes_scales_with_tokens_model_and_flavor():
    flavors = {f.name: f for f in builtin_flavors()}
    base = estimate_minutes(2e9, 8e6, flavors["a100-large"])
    assert 5 < base < 60
    assert estimate_minutes(2e9, 16e6, flavors["a100-large"]) == pytest.approx(2 * base)
    assert estimate_minutes(2e9, 8e6, flavors["h100"]) < base < estimate_minutes(2e9, 8e6, flavors["t4-small"])
    assert estimate_minutes(2e9, 8e6, flavors["a100-large"], "lora") < base
    assert estimate_minutes(2e9, 8e6, flavors["a100-large"], trainer="grpo") > base


def test_count_parameters_from_safetensors_headers_or_config(tiny_model_dir, tmp_path):
    exact, shape = count_parameters(tiny_model_dir)
    assert exact and shape == {"hidden_size": 64, "num_layers": 2, "vocab_size": shape["vocab_size"]}
    config_only = tmp_path / "model"
    config_only.mkdir()
    (config_only / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    estimated, _ = count_parameters(config_only)
    assert estimated == pytest.approx(exact, rel=0.05)  # norms and biases are left out of the estimate
    # Qwen3-1.7B's config (28 layers, hidden 2048, GQA 16/8 heads of 128, MLP 6144, vocab 151936, tied):
    # its model card says 1.7B parameters, 1.4B of them outside the embeddings
    (config_only / "config.json").write_text(json.dumps({
        "hidden_size": 2048, "num_hidden_layers": 28, "vocab_size": 151936, "num_attention_heads": 16,
        "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 6144, "tie_word_embeddings": True}))
    n_params = count_parameters(config_only)[0]
    assert n_params == pytest.approx(1.72e9, rel=0.01)
    assert n_params - 151936 * 2048 == pytest.approx(1.4e9, rel=0.02)
