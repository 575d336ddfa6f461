"""Held-out integrity: the shipped eval data is verified before every run, and eval paths are off-limits.

The files under `evals/data/` are listed with their SHA-256 in `evals/data/MANIFEST.sha256`
(`sha256sum` format), and the manifest's own digest is pinned in this module (`MANIFEST_SHA256`),
so editing a test file, adding one to a task folder or rewriting the manifest is caught before
the next evaluation. The agent's code actions cannot write files (smolagents' sandbox) and the
tools write under the data directory; training jobs, though, are ordinary processes, which is why
the data is checked at every run instead of trusted.

    python -m evals.integrity            # verify every shipped file
    python -m evals.integrity --write    # after regenerating fixtures: rewrite the manifest, print its digest

Also here: `data_digest` (the checksum recorded with every evaluation of local data, so a baseline
and a trained score can be shown to use the same items), `is_protected`/`refuse_protected` for
tools that take a path, and `local_eval_texts` (the question texts that contamination checks use).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

EVALS_DIR = Path(__file__).resolve().parent
DATA_DIR = EVALS_DIR / "data"
MANIFEST = DATA_DIR / "MANIFEST.sha256"
# The digest of MANIFEST.sha256 itself; `python -m evals.integrity --write` prints the new value.
MANIFEST_SHA256 = "0d83a53bbc1dd5625c532b1bf32d433bcbf23abad3081d1d498cda09c0afbfa2"
LOCAL_DATA_SUFFIXES = (".jsonl", ".json")


class TamperedEvalData(ValueError):
    """Shipped eval data differs from its manifest: the evaluation must not run."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def data_digest(path: str | Path) -> str:
    """One SHA-256 over a file, or over a folder's files (relative names and contents, in order)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in _files(path):
        digest.update(f"{file.relative_to(path).as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def manifest_entries(data_dir: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under `data_dir` except the manifest itself."""
    return {f.relative_to(data_dir).as_posix(): sha256_file(f) for f in _files(data_dir) if f.name != MANIFEST.name}


def read_manifest(manifest: Path | None = None, pinned: str | None = "pinned") -> dict[str, str]:
    """The manifest's entries; `pinned` is the digest it must have ("pinned": MANIFEST_SHA256, None: unchecked)."""
    manifest = manifest or DATA_DIR / MANIFEST.name
    pinned = MANIFEST_SHA256 if pinned == "pinned" else pinned
    if not manifest.is_file():
        raise TamperedEvalData(f"the eval data manifest {manifest} is missing; restore it from the repository.")
    if pinned and sha256_file(manifest) != pinned:
        raise TamperedEvalData(f"the eval data manifest {manifest} was modified (its SHA-256 no longer matches "
                               "the digest pinned in evals/integrity.py); restore it from the repository.")
    entries = {}
    for line in manifest.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            entries[name.strip().lstrip("*")] = digest
    return entries


def verify_data(task_dir: str | Path, data_dir: Path | None = None, manifest: Path | None = None,
                pinned: str | None = "pinned") -> dict:
    """Check one shipped task folder against the manifest; raise TamperedEvalData on any difference.

    Every file in the folder must be listed with the same digest and every listed file must exist.
    Returns {"verified": True, "files": n, "data_sha256": digest of the folder}.
    """
    task_dir, data_dir = Path(task_dir).resolve(), (data_dir or DATA_DIR).resolve()
    entries = read_manifest(manifest or data_dir / MANIFEST.name, pinned)
    if data_dir not in task_dir.parents:
        raise TamperedEvalData(f"{task_dir} is not a shipped eval folder under {data_dir}.")
    prefix = task_dir.relative_to(data_dir).as_posix() + "/"
    listed = {name: digest for name, digest in entries.items() if name.startswith(prefix)}
    if not listed:
        raise TamperedEvalData(f"{task_dir} is not listed in the eval data manifest; shipped tasks only.")
    present = {f.relative_to(data_dir).as_posix(): f for f in _files(task_dir)}
    problems = [f"{name} is missing" for name in sorted(set(listed) - set(present))]
    problems += [f"{name} was added" for name in sorted(set(present) - set(listed))]
    problems += [f"{name} was modified" for name in sorted(set(listed) & set(present))
                 if sha256_file(present[name]) != listed[name]]
    if problems:
        raise TamperedEvalData(f"the eval set in {task_dir} does not match its manifest ({'; '.join(problems)}): "
                               "refusing to evaluate on tampered data. Restore evals/data from the repository.")
    return {"verified": True, "files": len(listed), "data_sha256": data_digest(task_dir)}


def write_manifest(data_dir: Path | None = None) -> str:
    """Rewrite the manifest from the files on disk; return its digest (to pin as MANIFEST_SHA256)."""
    data_dir = data_dir or DATA_DIR
    entries = manifest_entries(data_dir)
    (data_dir / MANIFEST.name).write_text("".join(f"{d}  {name}\n" for name, d in entries.items()))
    return sha256_file(data_dir / MANIFEST.name)


def is_protected(path: str | Path) -> bool:
    """True for a path inside evals/ (eval code, data and manifest), which no tool may write."""
    resolved = Path(path).expanduser().resolve()
    return resolved == EVALS_DIR or EVALS_DIR in resolved.parents


def refuse_protected(path: str | Path, what: str = "this path") -> None:
    if is_protected(path):
        raise ValueError(f"{what} {path} is inside {EVALS_DIR}, which holds the evaluation code and held-out data: "
                         "nothing may be written there. Use a folder under the data directory instead.")


def read_rows(path: Path, split: str = "test", limit: int | None = None) -> list[dict]:
    """Rows of a local .jsonl/.json file, or of `<split>.jsonl`/`<split>.json` in a folder."""
    if path.is_dir():
        found = [path / f"{split}{s}" for s in LOCAL_DATA_SUFFIXES if (path / f"{split}{s}").is_file()]
        if not found:
            raise ValueError(f"{path} has no {split}.jsonl or {split}.json; name the eval file after its split.")
        path = found[0]
    if path.suffix == ".jsonl":
        rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
                if limit and len(rows) >= limit:
                    break
        return rows
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = data if isinstance(data, list) else data.get("data") or data.get("rows") or []
    return rows[:limit] if limit else rows


def local_eval_texts(entry: dict, limit: int | None = None) -> list[str]:
    """The question texts of a task whose data is local (a TASKS entry), for contamination checks."""
    column = entry["question_column"]
    rows = read_rows(Path(entry["data_path"]), entry.get("split", "test"), limit)
    return [str(row.get(column, "")) for row in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify (or rewrite) the shipped eval data manifest.")
    parser.add_argument("--write", action="store_true", help="rewrite the manifest and print its digest")
    args = parser.parse_args(argv)
    if args.write:
        print(f"MANIFEST_SHA256 = {write_manifest()!r}  # paste into evals/integrity.py")
        return 0
    folders = sorted({DATA_DIR / name.split("/")[0] for name in read_manifest()})
    for folder in folders:
        print(folder.name, verify_data(folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
