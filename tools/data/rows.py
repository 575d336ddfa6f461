"""Reading many rows of a Hub or local dataset, for the tools that check or convert them.

Hub datasets are paged through the dataset viewer's `/rows` (at most 100 rows a call); local
datasets are .jsonl/.json files or folders of them. Which dataset, config and split exist (and
the errors when one does not) is settled by inspect_dataset first, so all tools say the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from evals.catalogue import ALIASES, CATALOGUE, normalize
from tools.backends.hub import DatasetViewer, ViewerError
from tools.context import ToolContext
from tools.data.datasets import InspectDatasetTool
from tools.data.formats import ROLE_ALIASES, find_column, read_local_split
from tools.errors import ToolError
from tools.paths import looks_local

ROWS_PAGE = 100  # the viewer's maximum `length` for /rows


@dataclass
class LoadedRows:
    dataset: str
    source: str  # "hub" or "local"
    config: str
    split: str
    rows: list[dict]
    total: int | None  # rows in the whole split, when known
    trl_format: str
    path: str | None = None  # the local file read
    label_names: dict[str, list[str]] = field(default_factory=dict)  # ClassLabel columns: index -> name
    pages: list[tuple[int, int]] = field(default_factory=list)  # (offset, rows) read from the viewer
    row_ids: list[int] = field(default_factory=list)  # each row's index in the split
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        """Where the rows came from, for reports and the ledger."""
        return {"dataset": self.dataset, "source": self.source, "config": self.config, "split": self.split,
                "rows_read": len(self.rows), "rows_total": self.total,
                **({"path": self.path} if self.path else {}),
                **({"pages": [list(p) for p in self.pages]} if self.pages else {})}


def load_rows(ctx: ToolContext, dataset: str, config: str | None = None, split: str | None = None,
              limit: int = 500, spread: bool = False, prefer_split: str | None = None) -> LoadedRows:
    """Up to `limit` rows of one split. With `spread`, a Hub sample is taken in pages spread evenly
    over the split rather than from its start. Without `split`, `prefer_split` is taken when it exists."""
    inspect = InspectDatasetTool(ctx)
    info = inspect.describe(dataset, config=config, split=split, n_rows=0)
    names = [s["split"] for s in info["splits"] if s["config"] == info["config"]]
    if split is None and prefer_split in names and info["split"] != prefer_split:
        info = inspect.describe(dataset, config=info["config"], split=prefer_split, n_rows=0)
    if info["source"] == "local":
        entry = next(s for s in info["splits"] if s["split"] == info["split"])
        total, rows, notes = read_local_split(Path(entry["path"]), limit)
        return LoadedRows(str(Path(entry["path"]).resolve()), "local", info["config"], info["split"], rows,
                          total, info["trl_format"], path=entry["path"], notes=notes,
                          row_ids=list(range(len(rows))))
    return _hub_rows(ctx, info, limit, spread)


def _hub_rows(ctx: ToolContext, info: dict, limit: int, spread: bool) -> LoadedRows:
    viewer = DatasetViewer(ctx.settings)
    loaded = LoadedRows(info["dataset"], "hub", info["config"], info["split"], [], None, info["trl_format"])
    offset, truncated = 0, 0
    while len(loaded.rows) < limit:
        length = min(ROWS_PAGE, limit - len(loaded.rows))
        reply = _get_rows(viewer, loaded, offset, length)
        got = reply.get("rows") or []
        loaded.total = reply.get("num_rows_total", loaded.total)
        loaded.rows += [item["row"] for item in got]
        loaded.row_ids += [item.get("row_idx", offset + k) for k, item in enumerate(got)]
        loaded.pages.append((offset, len(got)))
        truncated += sum(bool(item.get("truncated_cells")) for item in got)
        if not loaded.label_names:
            loaded.label_names = {f["name"]: f["type"]["names"] for f in reply.get("features", [])
                                  if isinstance(f.get("type"), dict) and f["type"].get("_type") == "ClassLabel"}
        offset = _next_offset(offset + len(got), loaded.total, limit, len(loaded.pages), spread)
        if len(got) < length or offset is None:
            break
    if truncated:
        loaded.notes.append(f"The viewer truncated long cells in {truncated} rows; their text is incomplete.")
    return loaded


def _next_offset(sequential: int, total: int | None, limit: int, pages_read: int, spread: bool) -> int | None:
    """Where the next page starts: right after the last one, or (spread) at the next of evenly
    spaced pages over the split. None when the split is exhausted."""
    if total is not None and sequential >= total:
        return None
    pages = math.ceil(limit / ROWS_PAGE)
    if not spread or total is None or total < pages * ROWS_PAGE or pages < 2:
        return sequential
    return (total - ROWS_PAGE) * pages_read // (pages - 1)


def _get_rows(viewer: DatasetViewer, loaded: LoadedRows, offset: int, length: int) -> dict:
    try:
        return viewer.get("/rows", dataset=loaded.dataset, config=loaded.config, split=loaded.split,
                          offset=str(offset), length=str(length))
    except ViewerError as err:
        raise ToolError(f"The dataset viewer could not serve rows {offset}-{offset + length} of "
                        f"{loaded.dataset} ({loaded.config}/{loaded.split}): HTTP {err.status} {err.code or ''} "
                        f"{err.message}. Retry in a minute, or load the dataset inside a training job with "
                        "datasets.load_dataset.") from err


def load_eval_items(ctx: ToolContext, eval_set: str, limit: int) -> tuple[LoadedRows, str | None, list[str]]:
    """(rows, question column, one text per eval item) of an eval set: a benchmark from evals.catalogue
    ("gsm8k": its pinned data and question column), or a Hub id or local path (its test split when it
    has one, and a prompt-like column, else the column with the most text)."""
    canonical = None if looks_local(ctx, eval_set) or "/" in eval_set else ALIASES.get(normalize(eval_set))
    if canonical:
        entry = CATALOGUE[canonical]
        repo, config, split = entry.get("texts_repo") or (entry["hf_repo"], entry["hf_subset"], entry["split"])
        loaded = load_rows(ctx, repo, config=config, split=split, limit=limit)
    else:
        loaded = load_rows(ctx, eval_set, limit=limit, prefer_split="test")
    columns = sorted({k for r in loaded.rows for k in r})
    known = [e["question_column"] for e in CATALOGUE.values()
             if loaded.dataset in (e["hf_repo"], (e.get("texts_repo") or ("",))[0]) and e["question_column"] in columns]
    column = known[0] if known else find_column(columns, ROLE_ALIASES["prompt"]) or max(
        columns, key=lambda c: sum(len(v) for r in loaded.rows if isinstance(v := r.get(c), str)), default=None)
    return loaded, column, [row_text({column: r.get(column)}) for r in loaded.rows]


def row_text(row: dict, skip: set[str] | frozenset = frozenset()) -> str:
    """All the text in a row (strings, message contents, lists of strings), columns in `skip` left out."""
    return "\n".join(t for key, value in row.items() if key not in skip for t in _texts(value))


def _texts(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        inner = value.get("content", value.get("value"))
        return _texts(inner) if inner is not None else [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    if isinstance(value, bool) or value is None:
        return []
    return [str(value)]
