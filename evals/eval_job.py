"""The PEP 723 uv script that runs one evaluation as a job, on this machine or on HF Jobs.

    script = render_eval_script(["--model", "me/ckpt", "--task", "gsm8k", "--output-dir", "/tmp/eval"], gpu=True)

A job cannot see this repository, so the script carries what it runs: the evals package's
modules (runner, tasks, catalogue, integrity) and the shipped eval data with its manifest,
compressed inline. It unpacks them into a temporary folder and calls `evals.runner.main` with
`--print-samples`, so its log ends with `EVAL_SAMPLES {...}` and `EVAL_RESULT {...}` lines that
`collect_evaluation` reads back. CPU jobs use lighteval's transformers backend; on a GPU flavor the
script asks for `lighteval[vllm]` and passes `--backend vllm`. The fixture data is verified against
its manifest inside the job too.
"""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

EVALS_DIR = Path(__file__).resolve().parent
MODULES = ("__init__.py", "runner.py", "tasks.py", "catalogue.py", "integrity.py")
COMMON_DEPENDENCIES = ("huggingface_hub>=1.31,<2", "xxhash<4")
CPU_DEPENDENCIES = ("lighteval==0.13.0", "transformers==5.24.0", "accelerate==1.15.0", "datasets==5.2.0", "torch",
                    *COMMON_DEPENDENCIES)
# vLLM pins its own torch and transformers; lighteval 0.13's extra pins vllm>=0.10.0,<0.10.2.
GPU_DEPENDENCIES = ("lighteval[vllm]==0.13.0", "datasets==5.2.0", *COMMON_DEPENDENCIES)

TEMPLATE = '''# /// script
# requires-python = ">=3.10"
# dependencies = [
{dependencies}
# ]
# ///
"""Evaluation job written by ml-intern's run_evaluation: {title}.

Runs evals.runner (carried inline below with the shipped eval data) and prints EVAL_SAMPLES and
EVAL_RESULT lines. Re-run it with: uv run {filename}
"""

import base64
import os
import sys
import tempfile
import zlib
from pathlib import Path

ARGV = {argv}
FILES = {files}

root = Path(tempfile.mkdtemp(prefix="ml-intern-eval-"))
for name, packed in FILES.items():
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zlib.decompress(base64.b64decode(packed)))
sys.path.insert(0, str(root))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from evals.runner import main  # noqa: E402

sys.exit(main(ARGV + ["--print-samples"]))
'''


def _pack(path: Path) -> str:
    return base64.b64encode(zlib.compress(path.read_bytes(), 9)).decode()


def carried_files() -> dict[str, Path]:
    """Repository-relative name -> file, for everything the job script carries."""
    files = {f"evals/{name}": EVALS_DIR / name for name in MODULES}
    for path in sorted((EVALS_DIR / "data").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and "demo_train" not in path.parts:
            files[path.relative_to(EVALS_DIR.parent).as_posix()] = path
    return files


def render_eval_script(argv: list[str], gpu: bool = False, title: str = "evaluation",
                       filename: str = "eval_job.py") -> str:
    """The job script for `python -m evals.runner <argv>`; `gpu` selects the vLLM backend and its deps."""
    argv = list(argv)
    if gpu and "--backend" not in argv:
        argv += ["--backend", "vllm", "--device", "cuda"]
    dependencies = GPU_DEPENDENCIES if gpu else CPU_DEPENDENCIES
    files = {name: _pack(path) for name, path in carried_files().items()}
    body = "{\n" + "".join(f"    {json.dumps(name)}: {json.dumps(packed)},\n" for name, packed in files.items()) + "}"
    return TEMPLATE.format(dependencies="\n".join(f"#   {json.dumps(d)}," for d in dependencies),
                           title=title.replace('"', "'"), filename=filename, argv=json.dumps(argv), files=body)
