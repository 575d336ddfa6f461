"""Clients for the Hugging Face Hub, built from Settings: `hf_api` (huggingface_hub's HfApi),
`DatasetViewer` (the dataset viewer API), and `hub_errors`, which turns Hub failures into
ToolErrors the agent can act on; `is_hub_id` says whether a string is a repo id.

Text that comes back from the Hub (paper abstracts, dataset rows, cards) is written by third
parties: tools return it as capped data fields, never splice it into instructions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import HFValidationError, validate_repo_id

from tools.errors import ToolError
from tools.settings import Settings


def hf_api(settings: Settings) -> HfApi:
    """An HfApi on `settings.hf_endpoint` that authenticates with `settings.hf_token` only.

    Without a token in Settings it sends none (token=False), so a token saved on this machine
    by `hf auth login` is never picked up behind the session's back.
    """
    return HfApi(endpoint=settings.hf_endpoint, token=settings.hf_token or False,
                 library_name="ml-intern")


def is_hub_id(value: object, namespaced: bool = False) -> bool:
    """Whether `value` is a Hub repo id by huggingface_hub's own rules ("name" or "owner/name": letters,
    digits, '-', '_', '.', at most 96 characters, no '--' or '..'); with `namespaced`, only "owner/name"."""
    if not isinstance(value, str) or not value or (namespaced and "/" not in value):
        return False
    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return True


@contextmanager
def hub_errors(action: str, endpoint: str) -> Iterator[None]:
    """Turn Hub client failures during `action` into a ToolError saying what to do next."""
    try:
        yield
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        detail = cap_text(err.server_message or str(err).split("\n")[0], 200)
        if status == 429:
            hint = "the Hub is rate limiting; wait a minute and retry, or set HF_TOKEN for higher limits"
        elif status is not None and status >= 500:
            hint = "the Hub had a server error; retry in a minute"
        else:
            hint = "check the arguments and retry"
        raise ToolError(f"{action} failed: HTTP {status} from {endpoint} ({detail}); {hint}.") from err
    except httpx.HTTPError as err:
        raise ToolError(f"{action} failed: could not reach {endpoint} ({type(err).__name__}: "
                        f"{cap_text(str(err), 200)}); check the network or HF_ENDPOINT and retry.") from err


def cap_text(text: str | None, limit: int) -> str:
    """`text` with whitespace runs collapsed, cut to at most `limit` characters (marked with …)."""
    if not text:
        return ""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


class ViewerError(Exception):
    """A non-200 reply from the dataset viewer: HTTP status, X-Error-Code and its `error` text."""

    def __init__(self, status: int, code: str | None, message: str):
        super().__init__(f"HTTP {status} {code or ''}: {message}")
        self.status, self.code, self.message = status, code, message


class DatasetViewer:
    """The Hub's dataset viewer API (`/splits`, `/first-rows`, `/size`) at settings.datasets_server_url.

    Its host is not derived from HF_ENDPOINT (huggingface_hub hard-codes it), so it is a setting.
    The HF token, when set, goes as a Bearer header so gated and private datasets can be read.
    """

    def __init__(self, settings: Settings):
        self.base_url = settings.datasets_server_url.rstrip("/")
        self.timeout = settings.http_timeout_s
        self.headers = {"Authorization": f"Bearer {settings.hf_token}"} if settings.hf_token else {}

    def get(self, route: str, **params: str) -> dict:
        url = f"{self.base_url}/{route.lstrip('/')}"
        try:
            reply = httpx.get(url, params=params, headers=self.headers, timeout=self.timeout,
                              follow_redirects=True)
        except httpx.HTTPError as err:
            raise ToolError(f"Could not reach the dataset viewer at {self.base_url} ({type(err).__name__}); "
                            "retry later, or inspect a local copy of the data instead.") from err
        if reply.status_code != 200:
            try:
                body = reply.json()
                message = body.get("error") if isinstance(body, dict) else None
            except ValueError:
                message = None
            raise ViewerError(reply.status_code, reply.headers.get("X-Error-Code"),
                              cap_text(message or reply.text, 300))
        return reply.json()

    def splits(self, dataset: str) -> dict:
        return self.get("/splits", dataset=dataset)

    def first_rows(self, dataset: str, config: str, split: str) -> dict:
        return self.get("/first-rows", dataset=dataset, config=config, split=split)

    def size(self, dataset: str) -> dict:
        return self.get("/size", dataset=dataset)


def feature_type(feature) -> str:
    """A dataset viewer feature type as a short string: "string", "list<{content: string, ...}>"."""
    if isinstance(feature, list):
        return f"list<{feature_type(feature[0]) if feature else '?'}>"
    if not isinstance(feature, dict):
        return str(feature)
    kind = feature.get("_type")
    if kind is None:
        return "{" + ", ".join(f"{k}: {feature_type(v)}" for k, v in feature.items()) + "}"
    if kind == "Value":
        return feature.get("dtype", "?")
    if kind == "ClassLabel":
        return f"ClassLabel({', '.join(feature.get('names', [])[:10])})"
    if kind in ("List", "Sequence", "LargeList"):
        return f"list<{feature_type(feature.get('feature'))}>"
    return kind


def new_private_dataset_repo(api: HfApi, settings: Settings, repo_id: str) -> str:
    """Create a private dataset repo (in the user's namespace when `repo_id` has none); refuse an existing one.
    Call inside `hub_errors`. Returns the full repo id."""
    if "/" not in repo_id:
        repo_id = f"{settings.hf_namespace or api.whoami()['name']}/{repo_id}"
    try:
        api.create_repo(repo_id, repo_type="dataset", private=True)
    except HfHubHTTPError as err:
        if err.response is not None and err.response.status_code == 409:
            raise ToolError(f"The Hub dataset {repo_id} already exists; pass another hub_dataset_id "
                            "(this tool only creates new repos).") from err
        raise
    return repo_id
