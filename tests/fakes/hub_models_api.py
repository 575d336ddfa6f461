"""A loopback fake of the Hub's model info and Jobs hardware routes, on top of the fake Hub + viewer.

Adds to tests/fakes/hub_api.py (which serves /api/datasets and the dataset viewer):
- `GET /api/models/{owner}/{name}` as `HfApi.model_info(id, expand=["safetensors"])` receives it:
  `_id`, `id` and the expanded fields only; unknown ids answer 401 without a token and 404 with one,
  both with X-Error-Code RepoNotFound, like the real Hub.
- `GET /api/jobs/hardware` as `HfApi.list_jobs_hardware()` receives it (prices per minute, VRAM as
  text, the total for multi-GPU flavors). state["hardware_status"] = 500 makes it fail;
  state["hardware_delay_s"] = n makes it answer after n seconds.

    server = serve_models_hub()
    settings = hub_settings(server, Settings(data_dir=tmp), token=GRANTED_TOKEN)
"""

from __future__ import annotations

import time

from tests.fakes.hub_api import FakeHubHandler
from tests.fakes.server import FakeServer, route, serve

MODELS = {
    "Qwen/Qwen3-1.7B": {"_id": "680da718233834890aa01f51", "id": "Qwen/Qwen3-1.7B",
                        "safetensors": {"parameters": {"BF16": 2031739904}, "total": 2031739904}},
    "Qwen/Qwen2.5-0.5B-Instruct": {"_id": "66e6d4a0b1d3ef4ad3b1a2c0", "id": "Qwen/Qwen2.5-0.5B-Instruct",
                                   "safetensors": {"parameters": {"BF16": 494032768}, "total": 494032768}},
    "meta-llama/Llama-3.1-8B": {"_id": "66944f1fe0c5c2e493a804f5", "id": "meta-llama/Llama-3.1-8B",
                                "safetensors": {"parameters": {"BF16": 8030261248}, "total": 8030261248}},
    "meta-llama/Llama-3.1-70B": {"_id": "66944fd095c7fa6e68c314ae", "id": "meta-llama/Llama-3.1-70B",
                                 "safetensors": {"parameters": {"BF16": 70553706496}, "total": 70553706496}},
    "someone/pytorch-bin-only": {"_id": "65f0c0ffee00000000000001", "id": "someone/pytorch-bin-only"},
}


def _gpu(name, pretty, cpu, ram, model, quantity, vram, micro_usd_per_minute):
    return {"name": name, "prettyName": pretty, "cpu": cpu, "ram": ram, "ephemeralStorage": "1000 GB",
            "accelerator": {"type": "gpu", "model": model, "quantity": quantity, "vram": vram,
                            "manufacturer": "Nvidia"},
            "unitCostMicroUSD": micro_usd_per_minute, "unitCostUSD": micro_usd_per_minute / 1e6,
            "unitLabel": "minute"}


HARDWARE = [
    {"name": "cpu-basic", "prettyName": "CPU Basic", "cpu": "2 vCPU", "ram": "16 GB", "ephemeralStorage": "50 GB",
     "accelerator": None, "unitCostMicroUSD": 167, "unitCostUSD": 0.000167, "unitLabel": "minute"},
    {"name": "cpu-upgrade", "prettyName": "CPU Upgrade", "cpu": "8 vCPU", "ram": "32 GB",
     "ephemeralStorage": "50 GB", "accelerator": None, "unitCostMicroUSD": 500, "unitCostUSD": 0.0005,
     "unitLabel": "minute"},
    _gpu("t4-small", "Nvidia T4 - small", "4 vCPU", "15 GB", "T4", "1", "16 GB", 6667),
    _gpu("l4x1", "1x Nvidia L4", "8 vCPU", "30 GB", "L4", "1", "24 GB", 13333),
    _gpu("l4x4", "4x Nvidia L4", "48 vCPU", "186 GB", "L4", "4", "96 GB", 63333),
    _gpu("a10g-small", "Nvidia A10G - small", "4 vCPU", "15 GB", "A10G", "1", "24 GB", 16667),
    _gpu("a10g-large", "Nvidia A10G - large", "12 vCPU", "46 GB", "A10G", "1", "24 GB", 25000),
    _gpu("a100-large", "Nvidia A100 - large", "12 vCPU", "142 GB", "A100", "1", "80 GB", 41667),
    _gpu("h200", "Nvidia H200", "23 vCPU", "256 GB", "H200", "1", "141 GB", 83333),
]


class FakeModelsHubHandler(FakeHubHandler):
    @route("GET", r"/api/models/(?P<owner>[^/]+)/(?P<name>[^/]+)")
    def model_info(self, owner: str, name: str):
        if self._rate_limited():
            return
        model = MODELS.get(f"{owner}/{name}")
        if model is None:
            self.send_json({"error": "Repository not found"}, status=404 if self.token else 401,
                           headers={"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
            return
        expand = self.request_record.query.get("expand", [])
        self.send_json({k: v for k, v in model.items() if k in ("_id", "id") or k in expand})

    @route("GET", r"/api/jobs/hardware")
    def hardware(self):
        time.sleep(self.state.get("hardware_delay_s", 0))
        status = self.state.get("hardware_status", 200)
        if status != 200:
            self.send_json({"error": "Internal Error"}, status=status)
            return
        self.send_json(HARDWARE)


def serve_models_hub(state: dict | None = None) -> FakeServer:
    """The fake Hub (datasets, viewer, models, Jobs hardware) on loopback at `server.url`."""
    return serve(FakeModelsHubHandler, state)
