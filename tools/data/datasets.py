"""Finding and checking datasets: Hub search, a look inside a Hub or local dataset (with its
dataset card), and which TRL trainer its shape fits.

Row cells and card text are third-party data: they come back fenced (tools.untrusted) and capped,
never as instructions.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
from huggingface_hub.repocard import REGEX_YAML_BLOCK
from smolagents import Tool

from tools.backends.hub import DatasetViewer, ViewerError, cap_text, feature_type, hf_api, hub_errors, is_hub_id
from tools.context import ToolContext
from tools.data.formats import read_local_split
from tools.errors import ToolError
from tools.paths import looks_local, resolve_inside
from tools.settings import Settings
from tools.trl_formats import detect_trl_format, format_notes
from tools.untrusted import fence

SORTS = ("downloads", "likes", "trending_score", "last_modified", "created_at")
SORT_ALIASES = {"trending": "trending_score"}
SIZE_CATEGORIES = ("n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M",
                   "100M<n<1B", "1B<n<10B", "10B<n<100B", "100B<n<1T", "n>1T")
MAX_TAGS = 8
FIELD_CHARS = 500
NESTED_CHARS = 1500  # a list/dict cell, as JSON
CARD_CHARS = 2000
NAME_CHARS = 100  # column and config names
LIST_ITEMS = 8
MAX_ROWS = 20
LOCAL_SUFFIXES = (".jsonl", ".json")


def _cap_value(value, chars: int = FIELD_CHARS):
    """A row field with long strings cut and long lists shortened, structure kept."""
    if isinstance(value, str):
        return value if len(value) <= chars else value[: chars - 1] + "…"
    if isinstance(value, list):
        kept = [_cap_value(v, chars) for v in value[:LIST_ITEMS]]
        return kept + ([f"… {len(value) - LIST_ITEMS} more items"] if len(value) > LIST_ITEMS else [])
    if isinstance(value, dict):
        return {str(k)[:100]: _cap_value(v, chars) for k, v in list(value.items())[:50]}
    return value


def _fence_row(row: dict, source: str) -> dict:
    """A row with every cell that can hold text fenced: strings as they are, lists and dicts as JSON."""
    out = {}
    for column, value in row.items():
        where = f"{source}.{cap_text(column, NAME_CHARS)}"
        if isinstance(value, str):
            out[column] = fence(value, where, FIELD_CHARS)
        elif isinstance(value, list | dict):
            out[column] = fence(json.dumps(_cap_value(value), ensure_ascii=False), where, NESTED_CHARS)
        else:
            out[column] = value
    return out


def dataset_card(settings: Settings, dataset: str) -> tuple[dict, list[str]]:
    """{"card": the README.md body fenced (None when there is none), "license", "gated"} of a Hub
    dataset, and notes. Never raises: a card that cannot be read is a note, not an error.

    License and gated come from the Hub's dataset info (its `cardData` is the card's YAML header);
    the body is README.md at the same commit, through hf_hub_download (cached under data_dir).
    """
    api, page = hf_api(settings), f"{settings.hf_endpoint}/datasets/{dataset}"
    empty = {"card": None, "license": None, "gated": False}
    try:
        info = api.dataset_info(dataset)
    except (httpx.HTTPError, OSError, ValueError) as err:  # HfHubHTTPError included
        return empty, [f"Could not read the dataset card ({_short(err)}); check the license and "
                       f"provenance at {page} before training on it."]
    tagged = [t.split(":", 1)[1] for t in info.tags or [] if t.startswith("license:")]
    license = getattr(info.card_data, "license", None) or tagged
    license = ", ".join(map(str, license)) if isinstance(license, list) else license
    meta = {"license": cap_text(str(license), NAME_CHARS) if license else None, "gated": info.gated or False}
    if "README.md" not in {s.rfilename for s in info.siblings or []}:
        return {**empty, **meta}, [f"{dataset} has no dataset card (README.md): its provenance, license terms "
                                   f"and intended use are undocumented; check {page} before training on it."]
    try:
        path = api.hf_hub_download(dataset, "README.md", repo_type="dataset", revision=info.sha,
                                   cache_dir=settings.data_dir / "hf-cache")
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except (httpx.HTTPError, OSError, ValueError) as err:
        return {**empty, **meta}, [f"Could not download the dataset card ({_short(err)}); read it at {page}."]
    header = REGEX_YAML_BLOCK.search(text)
    body = (text[header.end():] if header else text).strip()
    notes = [] if body else [f"{dataset}'s dataset card has metadata but no description; check {page}."]
    return {**meta, "card": fence(body, f"dataset card of {dataset}", CARD_CHARS) if body else None}, notes


def _short(err: Exception) -> str:
    status = getattr(getattr(err, "response", None), "status_code", None)
    return f"{type(err).__name__}" + (f", HTTP {status}" if status else "")


def _value_type(value) -> str:
    """The type of a JSON value, in the words of `feature_type`."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return f"list<{_value_type(value[0]) if value else '?'}>"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value_type(v)}" for k, v in value.items()) + "}"
    return "null"


class SearchDatasetsTool(Tool):
    name = "search_datasets"
    description = """Search Hub datasets by words in their id and by tags.
Returns [{"id", "downloads", "likes", "gated", "tags", "last_modified"}].
Example: search_datasets(query="math", task="text-generation", language="en", size="1K<n<10K", limit=5)"""
    inputs = {
        "query": {"type": "string", "description": "Words in dataset ids (\"\" with a filter)."},
        "limit": {"type": "integer", "description": "Maximum results (1-100, default 10).", "nullable": True},
        "sort": {"type": "string", "description": "downloads (default), likes, trending, "
                 "last_modified, created_at.", "nullable": True},
        "filter": {"type": "string", "description": "More Hub tags, comma-separated, e.g. \"format:json\".",
                   "nullable": True},
        "task": {"type": "string", "description": "Task category, e.g. text-generation.", "nullable": True},
        "language": {"type": "string", "description": "Language code, e.g. en.", "nullable": True},
        "size": {"type": "string", "description": "Hub size category, e.g. n<1K or 10K<n<100K.", "nullable": True},
        "license": {"type": "string", "description": "License id, e.g. mit or apache-2.0.", "nullable": True},
    }
    output_type = "object"

    def __init__(self, ctx: ToolContext):
        super().__init__()
        self.ctx = ctx

    def forward(self, query: str, limit: int | None = 10, sort: str | None = "downloads",
                filter: str | None = None, task: str | None = None, language: str | None = None,
                size: str | None = None, license: str | None = None) -> list[dict]:
        sort = SORT_ALIASES.get(sort or "downloads", sort)
        if sort not in SORTS:
            raise ToolError(f"sort must be one of downloads, likes, trending, last_modified, created_at; got {sort!r}.")
        tags = search_tags(filter, task_categories=task, language=language, size_categories=size, license=license)
        query = (query or "").strip() or None
        if not query and not tags:
            raise ToolError("search_datasets needs a query or a filter, e.g. search_datasets(query=\"gsm8k\").")
        limit = max(1, min(int(limit or 10), 100))
        settings = self.ctx.settings
        with hub_errors("search_datasets", settings.hf_endpoint):
            found = list(hf_api(settings).list_datasets(search=query, filter=tags or None, sort=sort, limit=limit))
        return [{
            "id": info.id,
            "downloads": info.downloads or 0,
            "likes": info.likes or 0,
            "gated": info.gated or False,
            "tags": [cap_text(t, 80) for t in (info.tags or []) if not t.startswith("region:")][:MAX_TAGS],
            "last_modified": info.last_modified.date().isoformat() if info.last_modified else None,
        } for info in found]


def search_tags(filter: str | None, **by_key: str | None) -> list[str]:
    """Hub filter tags: the comma-separated `filter` plus "key:value" for each named filter given."""
    tags = [t.strip() for t in (filter or "").split(",") if t.strip()]
    for key, value in by_key.items():
        value = (value or "").strip().removeprefix(f"{key}:")
        if not value:
            continue
        if key == "size_categories" and value not in SIZE_CATEGORIES:
            raise ToolError(f"size must be one of {', '.join(SIZE_CATEGORIES)}; got {value!r}.")
        tags.append(f"{key}:{value}")
    return tags


class InspectDatasetTool(Tool):
    name = "inspect_dataset"
    description = """Look inside a dataset before training on it: splits, columns, first rows, card, TRL format.
Returns {"splits": [{"config", "split", "num_rows"}], "columns", "rows", "trl_format" (messages, text,
prompt-completion, preference, prompt-only, needs-conversion...), "usable_for", "card", "license", "notes"}.
Example: inspect_dataset(dataset="trl-lib/ultrafeedback_binarized", split="test", n_rows=2)"""
    inputs = {
        "dataset": {"type": "string", "description": "Hub dataset id or local .jsonl/.json file or folder."},
        "config": {"type": "string", "description": "Config (subset) name; default the first.", "nullable": True},
        "split": {"type": "string", "description": "Split name; default train, else the first.", "nullable": True},
        "n_rows": {"type": "integer", "description": "First rows to return (0-20, default 5).",
                   "nullable": True},
    }
    output_type = "object"

    def __init__(self, ctx: ToolContext):
        super().__init__()
        self.ctx = ctx

    def forward(self, dataset: str, config: str | None = None, split: str | None = None,
                n_rows: int | None = 5) -> dict:
        report = self.describe(dataset, config, split, n_rows)
        source = f"dataset:{report['dataset']}"
        report["rows"] = [_fence_row(row, f"{source} rows[{i}]") for i, row in enumerate(report["rows"])]
        card, notes = ({"card": None, "license": None, "gated": False}, []) if report["source"] == "local" \
            else dataset_card(self.ctx.settings, report["dataset"])
        return {**report, **card, "notes": report["notes"] + notes}

    def describe(self, dataset: str, config: str | None = None, split: str | None = None,
                 n_rows: int | None = 5) -> dict:
        """What `forward` returns without the card and with the rows as plain values, for the tools
        that read rows themselves (tools.data.rows)."""
        dataset = (dataset or "").strip()
        n_rows = max(0, min(int(5 if n_rows is None else n_rows), MAX_ROWS))
        local = self._local_path(dataset)
        if local is not None:
            report = self._inspect_local(local, split, n_rows)
        else:
            report = self._inspect_hub(dataset, config, split, n_rows)
        first, rows = report.pop("first_row"), report.pop("rows")
        fmt, usable = detect_trl_format(report["columns"], first)
        notes = format_notes(fmt, report["columns"], first) + report.pop("notes")
        return {**report, "trl_format": fmt, "usable_for": usable, "notes": notes, "rows": rows}

    def _local_path(self, dataset: str) -> Path | None:
        if not dataset:
            raise ToolError("inspect_dataset needs a Hub id like \"openai/gsm8k\" or a local path.")
        if looks_local(self.ctx, dataset) or not is_hub_id(dataset):
            return resolve_inside(self.ctx, dataset, "the local dataset")
        return None

    def _inspect_local(self, path: Path, split: str | None, n_rows: int) -> dict:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in LOCAL_SUFFIXES and p.is_file())
            if not files:
                raise ToolError(f"{path} holds no .jsonl or .json files; point at the data file itself.")
            by_split = {p.stem: p for p in files}
        elif path.suffix in LOCAL_SUFFIXES:
            by_split = {"train": path}
        else:
            raise ToolError(f"{path} is not a .jsonl or .json file; convert it to JSON Lines first.")
        if split is not None and split not in by_split:
            raise ToolError(f"No split {split!r} in {path}; splits: {', '.join(by_split)}.")
        chosen = split or ("train" if "train" in by_split else next(iter(by_split)))
        splits, rows, notes = [], [], []
        for name, file in by_split.items():
            count, first, file_notes = read_local_split(file, max(n_rows, 1) if name == chosen else 1)
            splits.append({"config": "default", "split": name, "num_rows": count, "path": str(file)})
            if name == chosen:
                rows, notes = first, file_notes
        if not rows:
            notes.append(f"Split {chosen!r} is empty.")
        first_row = rows[0] if rows else None
        return {"dataset": str(path), "source": "local", "config": "default", "split": chosen,
                "splits": splits, "columns": {k: _value_type(v) for k, v in (first_row or {}).items()},
                "rows": rows[:n_rows], "first_row": first_row, "notes": notes}

    def _inspect_hub(self, dataset: str, config: str | None, split: str | None, n_rows: int) -> dict:
        viewer = DatasetViewer(self.ctx.settings)
        try:
            listing = viewer.splits(dataset)
        except ViewerError as err:
            raise self._explain(dataset, err) from err
        entries = listing.get("splits") or []
        if not entries:
            raise ToolError(f"The dataset viewer has no splits for {dataset} yet (pending or failed); "
                            "retry in a few minutes or pick another dataset.")
        configs = list(dict.fromkeys(e["config"] for e in entries))
        if config is not None and config not in configs:
            raise ToolError(f"{dataset} has no config {config!r}; configs: {', '.join(configs[:30])}.")
        config = config or ("default" if "default" in configs else configs[0])
        names = [e["split"] for e in entries if e["config"] == config]
        if split is not None and split not in names:
            raise ToolError(f"{dataset} config {config!r} has no split {split!r}; splits: {', '.join(names)}.")
        split = split or ("train" if "train" in names else names[0])
        try:
            reply = viewer.first_rows(dataset, config, split)
        except ViewerError as err:
            raise self._explain(dataset, err) from err
        counts = self._split_sizes(viewer, dataset)
        rows = [item["row"] for item in reply.get("rows", [])]
        notes = [f"{len(configs)} configs: {cap_text(', '.join(configs[:10]), 10 * NAME_CHARS)}"] \
            if len(configs) > 1 else []
        if any(item.get("truncated_cells") for item in reply.get("rows", [])):
            notes.append("The viewer truncated some long cells in these sample rows.")
        return {
            "dataset": dataset, "source": "hub", "config": config, "split": split,
            "splits": [{"config": e["config"], "split": e["split"],
                        "num_rows": counts.get((e["config"], e["split"]))} for e in entries[:50]],
            "columns": {f["name"]: feature_type(f["type"]) for f in reply.get("features", [])},
            "rows": rows[:n_rows], "first_row": rows[0] if rows else None, "notes": notes,
        }

    @staticmethod
    def _split_sizes(viewer: DatasetViewer, dataset: str) -> dict[tuple[str, str], int]:
        """Row counts per (config, split) from /size; empty when the viewer cannot say."""
        try:
            size = viewer.size(dataset).get("size", {})
        except (ViewerError, ToolError):
            return {}
        return {(s["config"], s["split"]): s.get("num_rows") for s in size.get("splits", [])}

    def _explain(self, dataset: str, err: ViewerError) -> ToolError:
        """A ToolError for a viewer failure; 401/403/404 ask the Hub whether the id exists or is gated."""
        settings, page = self.ctx.settings, f"{self.ctx.settings.hf_endpoint}/datasets/{dataset}"
        if err.status in (401, 403, 404) and err.code != "ResponseNotFound":
            try:
                info = hf_api(settings).dataset_info(dataset)
            except GatedRepoError:
                info = None
            except RepositoryNotFoundError:
                return ToolError(f"Dataset {dataset!r} was not found on the Hub (or is private to another "
                                 "account). Check the owner/name spelling, or find one with "
                                 f"search_datasets(query=\"{dataset.split('/')[-1]}\").")
            except httpx.HTTPError:  # HfHubHTTPError included
                return ToolError(f"The dataset viewer refused {dataset!r} (HTTP {err.status}: {err.message}). "
                                 "Check the id with search_datasets; if it is gated, set HF_TOKEN and "
                                 f"accept its terms at {page}.")
            if info is None or info.gated:
                if not settings.hf_token:
                    return ToolError(f"Dataset {dataset!r} is gated: set HF_TOKEN to a token of an account "
                                     f"that has accepted its terms at {page}, then inspect it again.")
                return ToolError(f"Dataset {dataset!r} is gated and this HF_TOKEN's account has not been "
                                 f"granted access: accept its terms at {page} (approval may take time).")
            if info.private:
                return ToolError(f"Dataset {dataset!r} is private and the dataset viewer does not preview "
                                 "it for this account; load it inside a training job with "
                                 "datasets.load_dataset and check the columns there.")
        if err.status == 500 and err.code == "ResponseNotReady":
            return ToolError(f"The dataset viewer is still processing {dataset!r} ({err.message}); "
                             "retry in a few minutes or pick another dataset.")
        if err.status == 501:
            return ToolError(f"The dataset viewer does not support {dataset!r} ({err.message}). Pick "
                             "another dataset, or load it inside a training job with datasets.load_dataset.")
        return ToolError(f"The dataset viewer has no preview for {dataset!r} (HTTP {err.status} "
                         f"{err.code or ''}: {err.message}). Pick another dataset, or load it inside a "
                         "training job with datasets.load_dataset and check the columns there.")
