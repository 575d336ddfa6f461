"""`ml-intern` with no task: an interactive terminal chat on the same Session and events."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_interactive_chat_answers_each_turn_and_quits(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump([
        {"thought": "First turn.", "code": "final_answer('hello back')"},
        {"thought": "Second turn remembers nothing special.", "code": "final_answer('second answer')"},
    ]))
    env = {**os.environ, "ML_INTERN_DATA_DIR": str(tmp_path / "data"), "ML_INTERN_COMPUTE": "local"}
    env.pop("ANTHROPIC_API_KEY", None)
    done = subprocess.run([sys.executable, "-m", "agent", "--backend", "scripted", "--plan", str(plan)],
                          input="hello\nand again\nexit\n", capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "type a goal" in out
    assert out.index("✓ final_answer: hello back") < out.index("✓ final_answer: second answer")


def test_interactive_chat_without_a_key_says_what_to_set(tmp_path):
    env = {**os.environ, "ML_INTERN_DATA_DIR": str(tmp_path / "data")}
    env.pop("ANTHROPIC_API_KEY", None)
    done = subprocess.run([sys.executable, "-m", "agent"], input="hello\n", capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0
    assert "ANTHROPIC_API_KEY" in done.stdout
