"""The rules of a benchmark run (`ml-intern run`, agent/harness.py), as the tools enforce them.

A benchmark run post-trains one given base model for one benchmark within a time limit and leaves its best model
in `final_model/`, the way PostTrainBench's judges check it:

- only `base_model` is trained: write_training_script refuses any other starting model (a checkpoint of a run that
  started from it is fine), and the final model's architecture and weight shapes must match it
  (tools/training/final_model.py);
- every training set passes the decontamination check against the benchmark's evaluation data (`eval_set`) before
  a run is written (tools/training/admission.py);
- no remote LLM writes training data unless `allow_llm_data` (generate_synthetic_data refuses);
- the evaluator's folder (`eval_dir`) is read-only to every tool (Settings.read_only_dirs, tools/paths.py).

The session's ToolContext carries the rules (`ctx.rules`); outside a benchmark run it is None and nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FINAL_STATE_FILE = "final_model.json"  # under the data dir: every save_final_model attempt and the best one
ADMISSION_FILE = "admission.json"  # in each run's folder: the model lineage and decontamination check it passed


@dataclass(frozen=True)
class RunRules:
    base_model: str  # the Hub id or the resolved local folder of the only model that may be trained
    benchmark: str  # the benchmark as given: a catalogue name or custom:<source>
    eval_set: str  # what decontamination compares training data with (evals.catalogue name, Hub id or local path)
    workdir: Path
    final_dir: Path  # <workdir>/final_model
    audit_path: Path  # <workdir>/audit.json
    eval_command: str | None = None
    eval_dir: Path | None = None  # the folder the eval command runs in; read-only to every tool
    allow_llm_data: bool = False
    started_at: float = 0.0  # epoch seconds
    limit_at: float = 0.0  # epoch seconds: the hard time limit
    margin_s: float = 0.0  # the run stops this long before limit_at

    @property
    def stop_at(self) -> float:
        return self.limit_at - self.margin_s
