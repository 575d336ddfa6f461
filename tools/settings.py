"""Settings the tools need: where the data lives, which endpoints to call, which tokens to use.

Every remote base URL is a setting so that tests (and self-hosted mirrors) can point the real
clients at another server. Tokens are held here and nowhere else; they are never written out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_HF_ENDPOINT = "https://huggingface.co"
DEFAULT_DATASETS_SERVER = "https://datasets-server.huggingface.co"
DEFAULT_ARXIV_URL = "https://export.arxiv.org"
DEFAULT_ARXIV_HTML_URL = "https://arxiv.org"
DEFAULT_AR5IV_URL = "https://ar5iv.labs.arxiv.org"
DEFAULT_SEMANTIC_SCHOLAR_URL = "https://api.semanticscholar.org"
DEFAULT_GITHUB_API_URL = "https://api.github.com"


def default_data_dir() -> Path:
    """`/data` on a Space with persistent storage, else `./.ml-intern`."""
    if os.environ.get("ML_INTERN_DATA_DIR"):
        return Path(os.environ["ML_INTERN_DATA_DIR"])
    if os.environ.get("SPACE_ID") and Path("/data").is_dir():
        return Path("/data/ml-intern")
    return Path(".ml-intern")


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    hf_token: str | None = field(default=None, repr=False)
    github_token: str | None = field(default=None, repr=False)
    hf_endpoint: str = DEFAULT_HF_ENDPOINT
    datasets_server_url: str = DEFAULT_DATASETS_SERVER
    arxiv_url: str = DEFAULT_ARXIV_URL
    arxiv_html_url: str = DEFAULT_ARXIV_HTML_URL
    ar5iv_url: str = DEFAULT_AR5IV_URL
    semantic_scholar_url: str = DEFAULT_SEMANTIC_SCHOLAR_URL
    github_api_url: str = DEFAULT_GITHUB_API_URL
    compute_backend: str = "auto"  # "local", "hf-jobs" or "auto" (hf-jobs when an HF token is set)
    hf_namespace: str | None = None
    http_timeout_s: float = 20.0
    # Limits of the confined process that runs code actions and agent-written code (tools/confine.py).
    sandbox_timeout_s: float = 120.0  # wall clock of one code action, time spent in tools not counted
    sandbox_cpu_s: int = 300  # CPU seconds over the life of one sandbox process
    sandbox_memory_mb: int = 2048
    sandbox_file_mb: int = 64
    sandbox_processes: int = 32
    # Folders the owner lets tools read local datasets and models from, besides the workspace (tools/paths.py).
    extra_read_dirs: tuple[Path, ...] = ()
    # Folders no tool may write in, even inside the places above (a benchmark's evaluator; outside the data dir).
    read_only_dirs: tuple[Path, ...] = ()

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        env = os.environ
        values = dict(
            data_dir=default_data_dir(),
            hf_token=env.get("HF_TOKEN") or None,
            github_token=env.get("GITHUB_TOKEN") or None,
            hf_endpoint=env.get("HF_ENDPOINT", DEFAULT_HF_ENDPOINT),
            datasets_server_url=env.get("ML_INTERN_DATASETS_SERVER", DEFAULT_DATASETS_SERVER),
            arxiv_url=env.get("ML_INTERN_ARXIV_URL", DEFAULT_ARXIV_URL),
            arxiv_html_url=env.get("ML_INTERN_ARXIV_HTML_URL", DEFAULT_ARXIV_HTML_URL),
            ar5iv_url=env.get("ML_INTERN_AR5IV_URL", DEFAULT_AR5IV_URL),
            semantic_scholar_url=env.get("ML_INTERN_S2_URL", DEFAULT_SEMANTIC_SCHOLAR_URL),
            github_api_url=env.get("ML_INTERN_GITHUB_API_URL", DEFAULT_GITHUB_API_URL),
            compute_backend=env.get("ML_INTERN_COMPUTE", "auto"),
            hf_namespace=env.get("ML_INTERN_HF_NAMESPACE") or None,
            extra_read_dirs=tuple(Path(p) for p in env.get("ML_INTERN_READ_DIRS", "").split(os.pathsep) if p),
        )
        values.update(overrides)
        return cls(**values)

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)

    @property
    def resolved_compute_backend(self) -> str:
        if self.compute_backend == "auto":
            return "hf-jobs" if self.hf_token else "local"
        return self.compute_backend

    @property
    def secrets(self) -> list[str]:
        """Every secret value held, for redaction."""
        return [s for s in (self.hf_token, self.github_token) if s]
