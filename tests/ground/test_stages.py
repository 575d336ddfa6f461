"""The stage vocabulary: every backend reports its words, and they split into active and terminal."""

from __future__ import annotations

from tools.backends.jobs import HF_STAGES, JobStatus
from tools.stages import ACTIVE, CREATED, STAGES, TERMINAL


def test_stages_split_into_active_and_terminal():
    assert ACTIVE | TERMINAL == set(STAGES) and not ACTIVE & TERMINAL
    assert CREATED not in STAGES  # a run that was never submitted has no job stage
    assert "error" not in STAGES


def test_hf_jobs_stages_map_into_the_vocabulary():
    assert set(HF_STAGES.values()) <= set(STAGES)
    assert HF_STAGES["ERROR"] == "failed"
    assert [JobStatus("j", stage).done for stage in STAGES] == [stage in TERMINAL for stage in STAGES]
