"""The evaluation tools: score a checkpoint with lighteval and record a result you can trust in the ledger.

`run_evaluation` runs `python -m evals.runner ...` in a subprocess (the app never imports lighteval
or torch, and the recorded command is exactly what reproduces the number), or, with as_job=True,
submits the same runner as a job (tools.backends.jobs), recorded as a ledger run of kind "eval" (so
budgets, cancel_job and the lineage see it), and returns its id; `collect_evaluation` reads the job's
EVAL_RESULT line back and records the score against the training run whose checkpoint it scored.
Either way, before a score is recorded: the shipped eval data is verified against its manifest
(evals.integrity), a trained score needs a baseline of the starting model on the same task spec
(tools.evaluation.checks), its difference from that baseline comes with a 95% interval
(evals.compare), and the checkpoint's training data is checked for overlap with the eval questions:
a contaminated score is recorded, flagged and said so.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

from smolagents import Tool

from evals.catalogue import CATALOGUE, CUSTOM_PREFIX, resolve_task, shipped_tasks
from evals.compare import compare
from evals.integrity import TamperedEvalData, data_digest, refuse_protected, verify_data
from evals.runner import RESULT_PREFIX, SAMPLES_PREFIX
from tools.backends.hub import is_hub_id
from tools.confine import credential_free_env, yield_cpu
from tools.context import ToolContext
from tools.errors import ToolError
from tools.evaluation.checks import check_contamination, contamination_warning, hub_reachable, require_baseline
from tools.paths import looks_local, resolve_inside
from tools.redact import redact
from tools.spend import budget_spent, reserve_job, settle_job

REPO_ROOT = Path(__file__).resolve().parents[2]
EVAL_TIMEOUT_S = 3600
EVAL_JOB_TIMEOUT_S = 3 * 3600
STDERR_TAIL_LINES = 20
DETAIL_KEYS = ("task_spec", "source", "fewshot", "seed", "lighteval_version", "backend", "device", "data_sha256",
               "task_options", "details_path", "results_path", "job_details_path", "timings")


def _tail(text: str, n: int = STDERR_TAIL_LINES) -> str:
    """The last `n` lines, keeping only the final state of progress bars redrawn with '\\r'."""
    lines = [line.rsplit("\r", 1)[-1][:300] for line in text.splitlines()]
    return "\n".join([line for line in lines if line.strip()][-n:])


def _finite(x) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


class _EvaluationTool(Tool):
    output_type = "object"

    def __init__(self, ctx: ToolContext):
        self.ctx = ctx
        super().__init__()

    def record(self, request: dict, result: dict, job: dict | None = None) -> dict:
        """Check and write one finished evaluation into the ledger; the tool result the agent reads."""
        ctx = self.ctx
        ref = resolve_task(request["task"], request.get("task_options"))
        experiment_id, run_id, is_baseline = request["experiment_id"], request.get("run_id"), request["is_baseline"]
        run = ctx.ledger.get_run(int(run_id), user=ctx.user) if run_id is not None else None
        base = None if is_baseline else require_baseline(ctx, experiment_id, ref, run, result.get("data_sha256"))
        if is_baseline:
            experiment = ctx.ledger.get_experiment(experiment_id, user=ctx.user) or {}
            missing = {"base_model": result["model"], "task": ref["key"]}
            ctx.ledger.update_experiment(experiment_id, **{k: v for k, v in missing.items() if not experiment.get(k)})
        stderr = _finite(result.get("stderr"))
        details = {k: result.get(k) for k in DETAIL_KEYS if result.get(k) is not None}
        details["max_samples"] = request.get("max_samples")
        details["manifest_verified"] = ref["source"] == "fixture"
        if job:
            details["job"] = job
        if base is not None:
            details["baseline_eval_id"] = base["id"]
            details["comparison"] = compare(base, {**result, "stderr": stderr})
            details["contamination"] = check_contamination(ctx, ref, run_id)
            details["contaminated"] = bool(details["contamination"].get("contaminated"))
        eval_id = ctx.ledger.record_eval(
            model=result["model"], task=ref["key"], metric=result["metric"], value=result["value"], stderr=stderr,
            is_baseline=is_baseline, experiment_id=experiment_id, run_id=int(run_id) if run_id is not None else None,
            checkpoint=request.get("checkpoint"), n_samples=result["n_samples"], command=result["command"],
            details=details, user=ctx.user)
        out = {"eval_id": eval_id, "task": ref["key"], "metric": result["metric"], "value": result["value"],
               "stderr": stderr, "n_samples": result["n_samples"], "is_baseline": is_baseline,
               "model": result["model"], "command": result["command"]}
        if base is not None:
            comparison = details["comparison"]
            out.update(baseline=base["value"], delta=result["value"] - base["value"], comparison=comparison,
                       contaminated=details["contaminated"])
            notes = [f"vs baseline: {comparison['text']}"]
            if base["n_samples"] != result["n_samples"]:
                notes.append(f"the baseline used {base['n_samples']} samples and this evaluation "
                             f"{result['n_samples']}: the delta is not a fair comparison.")
            if not details["contamination"]["checked"]:
                notes.append(f"contamination not checked: {details['contamination']['reason']}")
            out["note"] = " ".join(notes)
            if details["contaminated"]:
                out["warning"] = contamination_warning(details["contamination"], ref["key"])
                out["contamination"] = {k: details["contamination"][k] for k in
                                        ("contaminated_items", "eval_items", "fraction", "levels", "matches")}
        ctx.emit("eval_result", {**out, "experiment_id": experiment_id, "run_id": run_id})
        return out


class RunEvaluationTool(_EvaluationTool):
    name = "run_evaluation"
    description = f"""Evaluate a checkpoint with lighteval and record the score. A trained score needs a baseline \
(is_baseline=True: starting model, same task) first; it comes compared with it and checked for training-data overlap.
Tasks: fixtures ({", ".join(shipped_tasks())}); benchmarks ({", ".join(CATALOGUE)}; "gsm8k|0" sets shots); \
custom:<.jsonl/.json path or Hub id> with task_options.
Returns {{"eval_id", "metric", "value", "stderr", "n_samples", "command"}}, trained also "baseline", "comparison" \
{{"difference", "ci95", "within_noise", "text"}}, "contaminated", "warning"; as_job {{"job_id", "stage", "message"}}: \
then collect_evaluation(job_id).
Example: run_evaluation(model=run["output_dir"], task="gsm8k", run_id=run["run_id"])"""
    inputs = {
        "model": {"type": "string", "description": "Checkpoint folder (a run's output_dir) or Hub model id."},
        "task": {"type": "string", "description": "A fixture, benchmark or custom:<source>."},
        "is_baseline": {"type": "boolean", "description": "True for the starting model.",
                        "nullable": True},
        "run_id": {"type": "integer", "description": "Run that produced this checkpoint.", "nullable": True},
        "max_samples": {"type": "integer", "description": "Only N samples (smoke test; not comparable).",
                        "nullable": True},
        "task_options": {"type": "object", "nullable": True, "description": (
            'custom: tasks only: {"kind": "multiple_choice"|"generative", "question", "choices", "answer" '
            '(columns), "match": "exact"|"number"|"regex:<pattern>", "split", "subset", "max_new_tokens"}.')},
        "as_job": {"type": "boolean", "description": "Run as a job (returns at once).",
                   "nullable": True},
        "flavor": {"type": "string", "description": "HF Jobs hardware for as_job; GPU flavors use vLLM.",
                   "nullable": True},
    }

    def forward(self, model: str, task: str, is_baseline: bool | None = False,
                run_id: int | None = None, max_samples: int | None = None, task_options: dict | None = None,
                as_job: bool | None = False, flavor: str | None = None) -> dict:
        ctx = self.ctx
        task, is_baseline, as_job = str(task or "").strip(), bool(is_baseline), bool(as_job)
        if not task:
            raise ToolError(f"run_evaluation needs a task: pass task= an offline fixture "
                            f"({', '.join(shipped_tasks())}), a benchmark that needs the Hub "
                            f"({', '.join(sorted(CATALOGUE))}), or "
                            "'custom:<local .jsonl file or folder, or Hub dataset id>' with task_options.")
        remote = as_job and ctx.jobs is not None and ctx.jobs.name != "local"
        model_ref, checkpoint = self._check_model(model, remote)
        source = task[len(CUSTOM_PREFIX):].strip() if task.lower().startswith(CUSTOM_PREFIX) else None
        if source and looks_local(ctx, source):
            task = CUSTOM_PREFIX + str(resolve_inside(ctx, source, "the custom task data"))
        try:
            ref = resolve_task(task, task_options)
        except ValueError as err:
            raise ToolError(f"{err} Pass one of these as task=.") from err
        run = ctx.ledger.get_run(int(run_id), user=ctx.user) if run_id is not None else None
        if run_id is not None and run is None:
            raise ToolError(f"there is no run {run_id} in the ledger; pass the run_id that "
                            "write_training_script returned, or leave run_id out.")
        if run is not None and run["kind"] == "eval":
            raise ToolError(f"run {run_id} is an evaluation job, not the training run that produced this checkpoint; "
                            "pass the run_id that write_training_script returned, or leave run_id out.")
        if max_samples is not None and int(max_samples) < 1:
            raise ToolError(f"max_samples must be a positive integer, got {max_samples}; "
                            "leave it out to evaluate the whole task.")
        data_sha256 = self._check_data(ref)
        experiment_id = ctx.current_experiment()
        if not is_baseline:
            require_baseline(ctx, experiment_id, ref, run, data_sha256)
        needs_hub = ref["needs_hub"] or not checkpoint
        if needs_hub and not remote and not hub_reachable(ctx.settings.hf_endpoint):
            what = f"the benchmark {ref['key']} downloads {ref.get('hf_repo')}" if ref["needs_hub"] else \
                f"the model {model_ref} is downloaded"
            raise ToolError(f"{what} from the Hugging Face Hub ({ctx.settings.hf_endpoint}), which this machine cannot "
                            f"reach. It is a known task; it cannot run offline. Offline, evaluate a shipped fixture "
                            f"({', '.join(shipped_tasks())}) or your own local data with task='custom:<file>', or "
                            "run it as a job on HF Jobs (as_job=True).")
        request = {"model": model_ref, "checkpoint": checkpoint, "task": ref["key"], "task_options": ref.get("custom"),
                   "is_baseline": is_baseline, "run_id": int(run_id) if run_id is not None else None,
                   "max_samples": int(max_samples) if max_samples is not None else None,
                   "experiment_id": experiment_id}
        out_dir = self._out_dir(ref)
        if as_job:
            return self._submit(request, ref, out_dir, flavor)
        return self.record(request, self._run(request, out_dir))

    def _check_data(self, ref: dict) -> str | None:
        try:
            if ref["source"] == "fixture":
                return verify_data(ref["data_path"])["data_sha256"]
        except TamperedEvalData as err:
            raise ToolError(str(err)) from err
        return data_digest(ref["data_path"]) if ref.get("data_path") else None

    def _out_dir(self, ref: dict) -> Path:
        slug = re.sub(r"[^\w.-]+", "-", ref["name"]).strip("-")[:40]
        out = (self.ctx.data_area("evals") / f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-"
               f"{uuid.uuid4().hex[:6]}").resolve()
        try:
            refuse_protected(out, "the evaluation output folder")
        except ValueError as err:
            raise ToolError(str(err)) from err
        return out

    def _check_model(self, model: str, remote: bool) -> tuple[str, str | None]:
        """(what the runner gets, the local checkpoint folder or None for a Hub id)."""
        text = str(model or "").strip()
        if not looks_local(self.ctx, text) and is_hub_id(text, namespaced=True):
            return text, None
        path = resolve_inside(self.ctx, text, "the model path")
        if not path.is_dir():
            raise ToolError(f"model path {model!r} does not exist or is not a directory; pass a local "
                            "checkpoint directory, e.g. the output_dir of a finished training run, or a Hub id.")
        if not (path / "config.json").is_file():
            hint = (" It holds a LoRA adapter (adapter_config.json): merge it into the base model and save "
                    "that." if (path / "adapter_config.json").is_file() else "")
            raise ToolError(f"{model!r} is not a model directory: it has no config.json.{hint} Pass the "
                            "directory a model was saved to with save_pretrained.")
        if remote:
            raise ToolError(f"{model!r} is a local folder, which a job on HF Jobs cannot see: push the checkpoint to "
                            "the Hub (hub_model_id when writing the run) and pass its Hub id, or evaluate it here.")
        return str(path), str(path)

    @staticmethod
    def _argv(request: dict, output_dir: str, device: str) -> list[str]:
        argv = ["--model", request["model"], "--task", request["task"], "--output-dir", output_dir,
                "--device", device]
        if request.get("task_options"):
            argv += ["--task-options", json.dumps(request["task_options"], sort_keys=True)]
        if request.get("max_samples"):
            argv += ["--max-samples", str(request["max_samples"])]
        return argv

    def _run(self, request: dict, out_dir: Path) -> dict:
        cmd = [sys.executable, "-m", "evals.runner", *self._argv(request, str(out_dir), "cpu")]
        token = self.ctx.settings.hf_token  # the user's, for a private model; none of the app's secrets
        env = credential_free_env({"TOKENIZERS_PARALLELISM": "false", **({"HF_TOKEN": token} if token else {})})
        try:
            proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=EVAL_TIMEOUT_S,
                                  preexec_fn=yield_cpu)
        except subprocess.TimeoutExpired as err:
            raise ToolError(f"evaluation of {request['model']} on {request['task']} did not finish within "
                            f"{EVAL_TIMEOUT_S} s; try max_samples for a quick check, a smaller model, or "
                            "as_job=True.") from err
        lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
        if proc.returncode != 0 or not lines:
            raise ToolError(f"evaluation of {request['model']} on {request['task']} failed (exit code "
                            f"{proc.returncode}). Last lines of its output:\n{_tail(proc.stderr or proc.stdout)}\n"
                            "Check that the checkpoint loads with transformers' AutoModelForCausalLM and "
                            "has its tokenizer saved next to it.")
        return json.loads(lines[-1][len(RESULT_PREFIX):])

    def _gpu(self, flavor: str | None) -> bool:
        if not flavor or self.ctx.jobs.name == "local":
            return False
        for f in self.ctx.jobs.flavors():
            if f.name == flavor:
                return f.is_gpu
        return not flavor.startswith("cpu")

    def _submit(self, request: dict, ref: dict, out_dir: Path, flavor: str | None) -> dict:
        from evals.eval_job import render_eval_script

        ctx = self.ctx
        if ctx.jobs is None:
            raise ToolError("as_job needs a job backend and this session has none; evaluate here (as_job=False).")
        local = ctx.jobs.name == "local"
        if not local and ref["source"] == "custom" and ref.get("data_path"):
            raise ToolError(f"the custom task data {ref['data_path']} is a local file, which a job on HF Jobs cannot "
                            "see: push it to the Hub and use task='custom:<owner/name>', or evaluate it here.")
        gpu = self._gpu(flavor)
        argv = self._argv(request, str(out_dir) if local else "/tmp/ml-intern-eval", "cuda" if gpu else "auto")
        out_dir.mkdir(parents=True, exist_ok=True)
        script_path = out_dir / "eval_job.py"
        script = render_eval_script(argv, gpu=gpu, title=f"{request['model']} on {ref['key']}")
        script_path.write_text(script)
        secrets = {"HF_TOKEN": ctx.settings.hf_token} if ctx.settings.hf_token else None
        with reserve_job(ctx, "eval", flavor, EVAL_JOB_TIMEOUT_S, task=ref["key"]) as held:
            if not local and not ctx.ask_approval("run_evaluation", {
                    "flavor": flavor or "cpu-basic", "task": ref["key"], "timeout_minutes": EVAL_JOB_TIMEOUT_S // 60,
                    "max_cost_usd": held.usd}):
                raise ToolError(f"the user did not approve an evaluation job on {flavor or 'cpu-basic'}; nothing was "
                                "submitted. Ask the user, or evaluate here.")
            job_id = ctx.jobs.submit(script_path, run_id=None, secrets=secrets, flavor=flavor,
                                     timeout_s=EVAL_JOB_TIMEOUT_S, labels={"ml-intern-eval": ref["name"]})
            held.attach(job_id)
        job = {"job_id": job_id, "backend": ctx.jobs.name, "flavor": flavor, "gpu": gpu,
               "script_path": str(script_path), "script_sha256": hashlib.sha256(script.encode()).hexdigest()}
        eval_run_id = ctx.ledger.create_run(
            "lighteval", request["model"], ref["spec"], experiment_id=request["experiment_id"], kind="eval",
            config={**request, "out_dir": str(out_dir), "job": job}, parent_run_id=request["run_id"],
            backend=ctx.jobs.name, job_id=job_id, hardware=flavor or ("local" if local else "cpu-basic"),
            status="running", started_at=time.time(), script_path=job["script_path"],
            script_sha256=job["script_sha256"], user=ctx.user)
        stage = ctx.jobs.status(job_id).stage
        out = {"job_id": job_id, "eval_run_id": eval_run_id, "backend": ctx.jobs.name, "stage": stage,
               "task": ref["key"], "model": request["model"], "is_baseline": request["is_baseline"],
               "message": f"Evaluation submitted. Call collect_evaluation(job_id={job_id!r}) to wait for it and "
                          "record its score."}
        if flavor and local:
            out["note"] = f"flavor {flavor!r} is ignored: the local backend uses this machine's hardware."
        ctx.emit("job_update", {"job_id": job_id, "run_id": eval_run_id, "backend": ctx.jobs.name,
                                "stage": stage, "message": out["message"]})
        return out


def parse_eval_log(log: str) -> tuple[dict | None, dict | None]:
    """The last EVAL_RESULT and EVAL_SAMPLES payloads in a job log (None when absent)."""
    found = {RESULT_PREFIX: None, SAMPLES_PREFIX: None}
    for line in log.splitlines():
        for prefix in found:
            if line.startswith(prefix):
                try:
                    found[prefix] = json.loads(line[len(prefix):])
                except json.JSONDecodeError:
                    continue
    return found[RESULT_PREFIX], found[SAMPLES_PREFIX]


class CollectEvaluationTool(_EvaluationTool):
    name = "collect_evaluation"
    description = """Wait for an evaluation job from run_evaluation(as_job=True) and record its score with the
same checks; a collected job returns its recorded result again.
Returns run_evaluation's result once the job ended; while it runs {"job_id", "stage", "still_running", "message"}.
Example: collect_evaluation(job_id=job["job_id"], max_minutes=60)"""
    inputs = {
        "job_id": {"type": "string", "description": "The job id from run_evaluation(as_job=True)."},
        "max_minutes": {"type": "number", "description": "Longest wait (default 30; 0 looks once).", "nullable": True},
    }
    poll_interval_s: float | None = None  # None: 2 s locally, 15 s on HF Jobs

    def forward(self, job_id: str, max_minutes: float | None = None) -> dict:
        ctx = self.ctx
        job_id = str(job_id).strip()
        run = ctx.ledger.run_by_job(job_id, user=ctx.user)
        if run is None or run["kind"] != "eval":
            raise ToolError(f"{job_id!r} is not an evaluation job in the ledger; pass the job_id that "
                            "run_evaluation(as_job=True) returned (training jobs are read with job_status).")
        request = json.loads(run["config_json"])
        if request.get("result"):
            return {**request["result"], "already_collected": True}
        deadline = time.monotonic() + 60 * (30.0 if max_minutes is None else max(0.0, float(max_minutes)))
        interval = self.poll_interval_s or (2.0 if ctx.jobs.name == "local" else 15.0)
        status = ctx.jobs.status(job_id)
        spent = None
        while not status.done and time.monotonic() + interval <= deadline and not (spent := budget_spent(ctx)):
            if ctx.stop_requested.wait(interval):  # the user stopped the turn
                break
            status = ctx.jobs.status(job_id)
        if not status.done:
            waiting = {"job_id": job_id, "stage": status.stage, "still_running": True,
                       "message": "The evaluation is still running; call collect_evaluation again later."}
            if spent:
                waiting.update(budget_spent=spent, message=f"Stopped waiting: {spent}. The evaluation is still "
                               f"{status.stage}; report what you have, or cancel_job it.")
            return waiting
        log = redact(ctx.jobs.logs(job_id), ctx.settings.secrets)
        result, samples = parse_eval_log(log)
        errors = [line for line in log.splitlines() if line.startswith("error: ")]
        ok = status.stage == "completed" and result is not None
        self._finish(run, status, None if ok else (errors[-1] if errors else f"no EVAL_RESULT line ({status.message})"))
        if not ok:
            raise ToolError(f"evaluation job {job_id} ended with stage {status.stage} ({status.message}) and no "
                            f"EVAL_RESULT line. {errors[-1] if errors else ''}\nLast lines of its log:\n{_tail(log)}")
        result = self._local_details(result, samples, Path(request["out_dir"]))
        out = self.record(request, result, job={**request["job"], "stage": status.stage, "eval_run_id": run["id"]})
        self.ctx.ledger.update_run(run["id"], config_json=json.dumps({**request, "result": out}, default=str))
        return out

    def _finish(self, run: dict, status, error: str | None) -> None:
        """Mark the evaluation run completed, or else failed (canceled, timeout) with `error`; its cost when known."""
        finished = run["finished_at"] or status.finished_at or time.time()
        stage = "failed" if status.stage == "completed" else status.stage  # completed without a score: failed
        fields = {"status": "completed" if error is None else stage, "finished_at": finished, "error": error}
        cost = self.ctx.jobs.cost(run["hardware"], status.started_at, finished) if run["cost_usd"] is None else None
        if cost is not None:
            fields["cost_usd"] = cost
        self.ctx.ledger.update_run(run["id"], **fields)
        settle_job(self.ctx, run, cost if cost is not None else run["cost_usd"])

    @staticmethod
    def _local_details(result: dict, samples: dict | None, out_dir: Path) -> dict:
        """A remote job's details file is gone with the job: rebuild it from the EVAL_SAMPLES line."""
        if result.get("details_path") and Path(result["details_path"]).is_file():
            return result
        if not samples:
            return {**result, "details_path": None}
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / Path(result.get("details_path") or "details.jsonl").name
        path.write_text("".join(json.dumps({"id": i, "metrics": {samples["metric"]: s}}) + "\n"
                                for i, s in zip(samples["ids"], samples["scores"], strict=True)))
        return {**result, "details_path": str(path), "job_details_path": result.get("details_path")}
