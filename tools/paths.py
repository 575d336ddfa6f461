"""Where a tool may read and write files on this machine: the one path policy every path argument goes through.

A path argument is resolved (relative paths against the session's workspace, `~` expanded, symlinks followed
to their real target; a relative path to read that is not in the workspace may name one under the data directory,
as in `datasets/<name>`) and then accepted only inside:

- the session's workspace (`ToolContext.workspace`), read and write;
- the user's own data areas, which the tools themselves fill (`USER_AREAS`: runs and their checkpoints, saved
  datasets, smoke runs, evaluation outputs; `ToolContext.data_area`, per user on a Space), and the offline demo's
  model (`SHARED_AREAS`), read and write;
- the shipped eval data (`evals/data`) and the folders the owner lists in `Settings.extra_read_dirs`
  (`ML_INTERN_READ_DIRS`), read only;
- `Settings.read_only_dirs` (a benchmark run's evaluator folder), read only: no write lands in one, even where it
  overlaps the places above, except in the data directory when that lies inside it.

`evals/` (the evaluation code, its held-out data and their manifest) is never writable. Anything else (`..`
out of these places, absolute paths elsewhere, a symlink inside the workspace that leads out) is refused with
a ToolError that says where files may go.
"""

from __future__ import annotations

import os
from pathlib import Path

from evals.integrity import DATA_DIR as EVAL_DATA_DIR
from evals.integrity import is_protected
from tools.context import ToolContext
from tools.errors import ToolError

USER_AREAS = ("runs", "datasets", "smoke", "evals")  # each user's own (ToolContext.data_area)
SHARED_AREAS = ("demo",)  # the offline demo's model and data, the same for everyone
PROJECT_ROOT = EVAL_DATA_DIR.parents[1]  # where a relative `evals/data/<task>` names the shipped eval data
LOCAL_DATA_SUFFIXES = (".jsonl", ".json")


def writable_roots(ctx: ToolContext) -> list[Path]:
    """The folders a tool may write in: the workspace, the user's data areas and the shared ones, resolved."""
    data_dir = Path(ctx.settings.data_dir).expanduser().resolve()
    return [ctx.workspace.expanduser().resolve(), *(ctx.data_area(area).expanduser().resolve() for area in USER_AREAS),
            *(data_dir / area for area in SHARED_AREAS)]


def readable_roots(ctx: ToolContext) -> list[Path]:
    """The folders a tool may read from: the writable ones, the shipped eval data and the owner's read folders."""
    extra = [Path(p).expanduser().resolve() for p in (*ctx.settings.extra_read_dirs, *ctx.settings.read_only_dirs)]
    return [*writable_roots(ctx), EVAL_DATA_DIR, *extra]


def read_only_folder(ctx: ToolContext, path: Path) -> Path | None:
    """The read-only folder (`Settings.read_only_dirs`) that holds `path`, or None; the data directory is exempt
    when it lies inside one (a benchmark's working folder holds both its evaluator and our data)."""
    data_dir = Path(ctx.settings.data_dir).expanduser().resolve()
    for root in (Path(p).expanduser().resolve() for p in ctx.settings.read_only_dirs):
        if _inside(path, [root]) and not (root in data_dir.parents and _inside(path, [data_dir])):
            return root
    return None


def allowed_places(ctx: ToolContext, write: bool = False) -> str:
    """The places a path may be, in words, for error messages."""
    data_dir = Path(ctx.settings.data_dir).expanduser().resolve()
    places = [f"the session workspace {ctx.workspace.expanduser().resolve()} (relative paths start there)",
              f"your {', '.join(USER_AREAS)} folders under {ctx.data_area().expanduser().resolve()}",
              f"the data directory's {', '.join(SHARED_AREAS)} folder under {data_dir}"]
    if write:
        return " or ".join(places)
    extra = ", ".join(str(Path(p).expanduser().resolve()) for p in ctx.settings.extra_read_dirs)
    places.append(f"the shipped eval data {EVAL_DATA_DIR}")
    places.append(f"the read-only folders {extra}" if extra else
                  "folders the owner lists in ML_INTERN_READ_DIRS (none are set)")
    return "; ".join(places)


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def resolve_inside(ctx: ToolContext, value: str | Path, purpose: str, write: bool = False) -> Path:
    """`value` as a real, absolute path inside the places this policy allows (see the module docstring); for a
    read it must exist. Raises ToolError naming `purpose` and where files may go."""
    text = str(value).strip()
    if not text:
        raise ToolError(f"{purpose} is empty: pass a path in {allowed_places(ctx, write)}.")
    given = Path(text).expanduser()
    path = (given if given.is_absolute() else ctx.workspace / given).resolve()
    if not write and not given.is_absolute() and not path.exists():
        path = next((p for p in _read_fallbacks(ctx, given) if p.exists()), path)
    if write and is_protected(path):
        raise ToolError(f"{purpose} {text!r} is inside evals/, which holds the evaluation code, its held-out data "
                        f"and their manifest: no tool writes there. Write in {allowed_places(ctx, write=True)}.")
    if write and (folder := read_only_folder(ctx, path)) is not None:
        raise ToolError(f"{purpose} {text!r} is inside {folder}, the evaluator's folder, which is read-only to every "
                        f"tool. Write in {allowed_places(ctx, write=True)}.")
    if not _inside(path, writable_roots(ctx) if write else readable_roots(ctx)):
        what = "write to" if write else "read"
        raise ToolError(f"{purpose} {text!r} resolves to {path}, which tools may not {what}: files may go only in "
                        f"{allowed_places(ctx, write)}.")
    if not write and not path.exists():
        raise ToolError(f"No file or folder at {text!r}: {purpose} {path} does not exist. Files may be read from "
                        f"{allowed_places(ctx)}.")
    if path.is_dir():
        _refuse_links_out(ctx, path, purpose, write)
    return path


def _read_fallbacks(ctx: ToolContext, given: Path) -> list[Path]:
    """Where a relative path to read may also point when it is not in the workspace: one the tools returned
    relative to the user's data areas (`datasets/<name>`) or the data directory (`demo/...`), or the shipped eval
    data named from the project root (`evals/data/<task>`). The policy's roots still decide whether it may be
    read."""
    places = (ctx.data_area() / given, Path(ctx.settings.data_dir) / given, PROJECT_ROOT / given)
    return list(dict.fromkeys(place.resolve() for place in places))  # for the local user the first two are one


def _refuse_links_out(ctx: ToolContext, folder: Path, purpose: str, write: bool) -> None:
    """Raise ToolError when a symlink anywhere under `folder` leads out of the allowed places."""
    roots = writable_roots(ctx) if write else readable_roots(ctx)
    for parent, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            entry = Path(parent) / name
            if entry.is_symlink() and not _inside(entry.resolve(), roots):
                raise ToolError(f"{purpose} {folder} holds {entry}, a link to {entry.resolve()}, outside the places "
                                f"tools may {'write to' if write else 'read'}: {allowed_places(ctx, write)}.")


def looks_local(ctx: ToolContext, value: str) -> bool:
    """True when `value` names a local path rather than a Hub id: it starts like a path (`/`, `.`, `~`), ends in
    .json/.jsonl, or exists relative to the workspace or where `resolve_inside` looks next. Whatever else it is,
    callers check it as a Hub id."""
    text = str(value or "").strip()
    return bool(text) and (text.startswith(("/", ".", "~")) or text.endswith(LOCAL_DATA_SUFFIXES)
                           or (ctx.workspace / text).exists()
                           or any(p.exists() for p in _read_fallbacks(ctx, Path(text))))
