"""The installed training libraries, read from themselves: exact signatures, config fields with
their defaults and help, and a keyword search over docstrings.

Everything comes from the packages installed in this environment (importlib + inspect), so it is
offline and always matches the pinned versions. Imports happen inside the tools' forward only;
the search index is built once per process and library, on first use, and kept on disk keyed by
the installed version.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import enum
import hashlib
import importlib
import inspect
import json
import re
import threading
import time
import warnings
from importlib import metadata
from pathlib import Path

from smolagents import Tool

from tools.context import ToolContext
from tools.errors import ToolError

LIBRARIES = ("trl", "peft", "transformers", "datasets", "lighteval", "accelerate", "huggingface_hub", "smolagents")
# What search_docs indexes: a module name means its public names, any other name that one object.
# transformers' top level (7000+ names) and lighteval's (empty) are replaced by what post-training uses.
INDEXED = {
    "trl": ("trl", "trl.rewards"),
    "peft": ("peft",),
    "transformers": tuple(f"transformers.{n}" for n in (
        "TrainingArguments", "Trainer", "TrainerCallback", "EarlyStoppingCallback", "GenerationConfig",
        "GenerationMixin", "BitsAndBytesConfig", "AutoConfig", "AutoTokenizer", "AutoProcessor",
        "AutoModelForCausalLM", "AutoModelForSequenceClassification", "PreTrainedModel", "PreTrainedTokenizerBase",
        "DataCollatorForLanguageModeling", "DataCollatorWithPadding", "HfArgumentParser", "pipeline", "set_seed",
        "get_scheduler", "TextStreamer")),
    "datasets": ("datasets",),
    "lighteval": ("lighteval.pipeline.Pipeline", "lighteval.pipeline.PipelineParameters",
                  "lighteval.pipeline.ParallelismManager", "lighteval.logging.evaluation_tracker.EvaluationTracker",
                  "lighteval.models.transformers.transformers_model.TransformersModelConfig",
                  "lighteval.models.vllm.vllm_model.VLLMModelConfig",
                  "lighteval.models.model_input.GenerationParameters",
                  "lighteval.tasks.lighteval_task.LightevalTaskConfig", "lighteval.tasks.requests.Doc"),
    "accelerate": ("accelerate",),
    "huggingface_hub": ("huggingface_hub",),
    "smolagents": ("smolagents",),
}
DOC_CHARS, CONFIG_DOC_CHARS, SIGNATURE_CHARS = 4000, 1200, 1500
HELP_CHARS, INHERITED_HELP_CHARS, FIELD_HELP_CHARS = 400, 120, 2000
MAX_MEMBERS, SNIPPET_CHARS, MAX_LIMIT = 80, 300, 50
INDEX_FORMAT = 1  # bump when the entries' shape changes
OUT_OF_DATE = "Your memory of these APIs is out of date."

_index: dict[str, list[dict]] = {}
_index_lock = threading.Lock()
index_build_seconds: dict[str, float] = {}


def _cap(text, limit: int) -> str:
    text = inspect.cleandoc(str(text or "")).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def version_of(library: str) -> str:
    try:
        return metadata.version(library)
    except metadata.PackageNotFoundError:
        return "not installed"


def _doc_help(cls, name: str) -> str | None:
    """A field's entry in its class docstring's Args/Attributes/Parameters list, when it has no help metadata."""
    match = re.search(rf"^([ \t]*){re.escape(name)}(?:[ \t]*\(.*\))?:[ \t]*(.*)\n((?:\1[ \t]+\S.*\n?)*)",
                      inspect.cleandoc(cls.__doc__ or ""), re.M)
    return " ".join(f"{match.group(2)} {match.group(3)}".split()) or None if match else None


def _default(value, factory, required: bool) -> str:
    if factory is not None:
        return f"{getattr(factory, '__name__', 'factory')}()"
    return "required" if required else repr(value)


def _field_specs(cls) -> list[tuple[str, object, str, str | None, type]]:
    """(name, type, default, help, owner class) of a dataclass's or pydantic model's fields."""
    def spec(name, annotation, default, help_text):
        owner = next((k for k in cls.__mro__ if name in k.__dict__.get("__annotations__", {})), cls)
        return name, annotation, default, help_text or _doc_help(owner, name), owner

    if dataclasses.is_dataclass(cls):
        missing = dataclasses.MISSING
        return [spec(f.name, f.type, _default(f.default, None if f.default_factory is missing else f.default_factory,
                                              f.default is missing and f.default_factory is missing),
                     f.metadata.get("help")) for f in dataclasses.fields(cls)]
    if isinstance(getattr(cls, "model_fields", None), dict):  # pydantic models (lighteval configs)
        return [spec(name, f.annotation, _default(f.default, f.default_factory, f.is_required()), f.description)
                for name, f in cls.model_fields.items()]
    return []


def _type_name(annotation) -> str:
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    return _cap(text, 120)


def field_record(name, annotation, default, help_text, owner, cls, help_chars=HELP_CHARS) -> dict:
    """One field as data; an inherited field, when cut short, leaves out its type."""
    record = {"name": name, "type": _type_name(annotation), "default": _cap(default, 160),
              "help": _cap(help_text, help_chars) or None}
    if owner is not cls:
        record["inherited_from"] = f"{owner.__module__.split('.')[0]}.{owner.__qualname__}"
        if help_chars < HELP_CHARS:
            del record["type"]
    return record


def _signature(obj) -> str | None:
    try:
        return _cap(str(inspect.signature(obj)), SIGNATURE_CHARS)
    except (TypeError, ValueError):
        return None


def _public(container) -> list[str]:
    return sorted(n for n in dir(container) if not n.startswith("_"))


def _not_found(missing: str, within: str, candidates: list[str]) -> ToolError:
    lower = {c.lower(): c for c in candidates}
    close = [lower[c] for c in difflib.get_close_matches(missing.lower(), list(lower), n=5, cutoff=0.6)]
    hint = f" Did you mean {', '.join(f'{within}.{c}' for c in close)}?" if close else (
        " Try search_docs(query=...) to find it by keyword.")
    return ToolError(f"{within} has no attribute {missing!r} in the installed version.{hint}")


def _top(library: str):
    """The library's top-level module, or None when it cannot be imported here."""
    try:
        return importlib.import_module(library)
    except ImportError:
        return None


def _belongs(obj, library: str) -> bool:
    """Whether `obj` (a top-level attribute) is the library's own, not e.g. a module it imported."""
    home = obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", None)
    return obj is not None and str(home).split(".")[0] == library


def resolve(name: str) -> tuple[str, object]:
    """(full dotted name, object) for `name`; a bare name is looked up in each library's top level."""
    parts = [p for p in (name or "").strip().split(".") if p]
    if not parts:
        raise ToolError("lookup_api needs a dotted name, e.g. lookup_api(name=\"trl.SFTConfig\").")
    if parts[0] not in LIBRARIES:
        owners = [lib for lib in LIBRARIES if _belongs(getattr(_top(lib), parts[0], None), lib)]
        if not owners:
            close = difflib.get_close_matches(parts[0], LIBRARIES, n=3, cutoff=0.6)
            raise ToolError(f"{parts[0]!r} is not one of the libraries lookup_api reads ({', '.join(LIBRARIES)})"
                            + (f"; did you mean {', '.join(close)}?" if close else
                               "; give the full dotted name, e.g. \"trl.SFTConfig\"."))
        parts = [owners[0], *parts]
    obj, path = _top(parts[0]), parts[0]
    if obj is None:
        raise ToolError(f"{parts[0]} is not installed in this environment ({version_of(parts[0])}).")
    for part in parts[1:]:
        fields = {spec[0]: spec for spec in _field_specs(obj)} if inspect.isclass(obj) else {}
        if part in fields:
            return f"{path}.{part}", (obj, fields[part])
        try:
            obj = getattr(obj, part)
        except AttributeError:
            if not inspect.ismodule(obj):
                raise _not_found(part, path, _public(obj)) from None
            try:
                obj = importlib.import_module(f"{path}.{part}")
            except ModuleNotFoundError:
                raise _not_found(part, path, _public(obj)) from None
        except Exception as err:  # a lazy import failed: an optional dependency is missing
            raise ToolError(f"Importing {path}.{part} failed in this environment ({type(err).__name__}: "
                            f"{_cap(err, 300)}).") from err
        if inspect.ismodule(obj) and obj.__name__.split(".")[0] not in LIBRARIES:
            raise ToolError(f"{path}.{part} is the module {obj.__name__}, which lookup_api does not read.")
        path = f"{path}.{part}"
    return path, obj


def describe(path: str, obj) -> dict:
    library = path.split(".")[0]
    record = {"name": path, "library": library, "version": version_of(library)}
    if isinstance(obj, tuple):  # (class, field spec): one config field
        cls, spec = obj
        return {**record, "kind": "config field", **field_record(*spec, cls, FIELD_HELP_CHARS)}
    specs = _field_specs(obj) if inspect.isclass(obj) else []
    if inspect.ismodule(obj):
        kind = "module"
    elif inspect.isclass(obj) and issubclass(obj, enum.Enum):
        kind = "enum"
    elif inspect.isclass(obj):
        kind = "config class" if specs else "class"
    elif inspect.ismethod(obj) or "." in getattr(obj, "__qualname__", ""):
        kind = "method"
    else:
        kind = "function" if callable(obj) else "value"
    record["kind"] = kind
    module = getattr(obj, "__module__", None) if not inspect.ismodule(obj) else obj.__name__
    record["defined_in"] = f"{module}.{getattr(obj, '__qualname__', '')}".rstrip(".") if module else None
    if kind == "value":
        record["value"] = _cap(repr(obj), DOC_CHARS)
        return record
    record["signature"] = None if kind in ("module", "config class", "enum") else _signature(obj)
    record["doc"] = _cap(inspect.getdoc(obj), CONFIG_DOC_CHARS if specs else DOC_CHARS)
    if kind == "enum":
        record["doc"] = _cap(obj.__dict__.get("__doc__"), DOC_CHARS)  # not Enum's own docstring
        record["members"] = [f"{m.name}={m.value!r}" for m in obj][:MAX_MEMBERS]
    elif specs:
        own = [field_record(*s, obj) for s in specs if s[4] is obj]
        inherited = [field_record(*s, obj, INHERITED_HELP_CHARS) for s in specs if s[4] is not obj]
        record["fields"] = own + inherited
        record["note"] = (f"{len(own)} fields defined here, then {len(inherited)} inherited (help cut short, no "
                          f"type); lookup_api(name=\"{path}.<field>\") gives one field's full help.")
    elif kind == "class":
        record["methods"] = [n for n in _public(obj) if callable(getattr(obj, n, None))][:MAX_MEMBERS]
    elif kind == "module":
        record["members"] = _public(obj)[:MAX_MEMBERS]
    return record


def _entries_for(name: str, obj, seen: set) -> list[dict]:
    """Index entries for one public object: the object, its own config fields, its own methods."""
    key = (getattr(obj, "__module__", None), getattr(obj, "__qualname__", None))
    if key in seen or key[1] is None or not str(key[0]).startswith(name.split(".")[0]):
        return []
    seen.add(key)
    if inspect.isclass(obj):
        specs = _field_specs(obj)
        entries = [{"name": name, "kind": "config class" if specs else "class", "text": inspect.getdoc(obj) or ""}]
        for f, annotation, default, help_text, owner in specs:
            if owner is obj:
                entries.append({"name": f"{name}.{f}", "kind": "config field",
                                "text": f"{f}: {_type_name(annotation)} = {_cap(default, 160)}. {help_text or ''}"})
        for method, fn in vars(obj).items():
            doc = inspect.getdoc(fn) if callable(fn) and not method.startswith("_") else None
            if doc:  # a top-level alias of this method (huggingface_hub.run_uv_job) is then skipped
                seen.add((getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)))
                entries.append({"name": f"{name}.{method}", "kind": "method", "text": doc})
        return entries
    if callable(obj):
        return [{"name": name, "kind": "function", "text": inspect.getdoc(obj) or ""}]
    return []


def _collect(library: str) -> list[dict]:
    entries, seen = [], set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for source in INDEXED[library]:
            try:
                _, obj = resolve(source)
            except ToolError:
                continue
            for attr in _public(obj) if inspect.ismodule(obj) else [None]:
                try:
                    member = getattr(obj, attr) if attr else obj
                except Exception:  # an optional dependency of one export is missing
                    continue
                if not inspect.ismodule(member):
                    entries += _entries_for(f"{source}.{attr}" if attr else source, member, seen)
    return entries


def build_index(library: str, cache_dir: Path | None = None) -> list[dict]:
    """The search entries of one library, built on first use and kept for the process.

    With `cache_dir`, entries are also kept on disk under a key of the installed version, so a
    later process skips the imports (seconds) until the library changes.
    """
    with _index_lock:
        if library in _index:
            return _index[library]
        started, entries = time.perf_counter(), None
        key = hashlib.sha256(json.dumps([INDEX_FORMAT, library, version_of(library), INDEXED[library]]).encode())
        cached = cache_dir / f"docs-index-{library}-{key.hexdigest()[:16]}.json" if cache_dir else None
        with contextlib.suppress(OSError, ValueError):
            entries = json.loads(cached.read_text()) if cached and cached.is_file() else None
        if entries is None:
            entries = _collect(library)
            with contextlib.suppress(OSError):  # a read-only data dir only costs the next process a rebuild
                if cached:
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    cached.with_suffix(".tmp").write_text(json.dumps(entries))
                    cached.with_suffix(".tmp").replace(cached)
        for entry in entries:
            entry["lower"] = entry["text"].lower()
            entry["leaf"] = entry["name"].rsplit(".", 1)[-1].lower()
        index_build_seconds[library] = time.perf_counter() - started
        _index[library] = entries
        return entries


def score(entry: dict, terms: list[str]) -> float:
    joined, name = "_".join(terms), entry["name"].lower()
    points = 20.0 if entry["leaf"] == joined else 0.0
    for term in terms:
        variants = {term, term.replace("_", " "), term.replace("_", "-")}
        points += 8 if term == entry["leaf"] else 4 if term in name else 0
        points += min(5, sum(entry["lower"].count(v) for v in variants))
    if all(t in name or t in entry["lower"] for t in terms):
        points += 3 * (len(terms) > 1)
    else:
        points /= 2
    return points


def snippet(entry: dict, terms: list[str]) -> str:
    text, lower = " ".join(entry["text"].split()), " ".join(entry["lower"].split())
    at = min((i for i in (lower.find(t) for t in terms) if i >= 0), default=0)
    start = max(0, at - 80)
    return ("…" if start else "") + _cap(text[start:], SNIPPET_CHARS)


class LookupApiTool(Tool):
    name = "lookup_api"
    description = f"""The signature, docstring and version of a class, function or config field in the INSTALLED
{", ".join(LIBRARIES)}; config classes list every field. {OUT_OF_DATE}
Returns {{"kind", "version", "signature", "doc", "fields": [{{"name", "type", "default", "help"}}]}}.
Example: lookup_api(name="trl.SFTConfig")["fields"]"""
    inputs = {"name": {"type": "string",
                       "description": "Dotted name, e.g. \"trl.GRPOConfig\" or \"trl.SFTConfig.packing\"; "
                                      "a bare name is looked up in every library."}}
    output_type = "object"

    def __init__(self, ctx: ToolContext):
        super().__init__()
        self.ctx = ctx

    def forward(self, name: str) -> dict:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return describe(*resolve(name))


class SearchDocsTool(Tool):
    name = "search_docs"
    description = f"""Search the INSTALLED libraries' docstrings and config-field help for which class or
argument does something; then lookup_api a hit. {OUT_OF_DATE}
Returns [{{"name": "trl.SFTConfig.packing", "kind", "snippet"}}], best first.
Example: search_docs(query="padding_free", library="trl", limit=5)"""
    inputs = {
        "query": {"type": "string", "description": "Keyword(s), e.g. \"gradient checkpointing\"."},
        "library": {"type": "string", "description": "Search only this library (e.g. \"trl\"); default all.",
                    "nullable": True},
        "limit": {"type": "integer", "description": "Maximum results (1-50, default 10).", "nullable": True},
    }
    output_type = "object"

    def __init__(self, ctx: ToolContext):
        super().__init__()
        self.ctx = ctx

    def forward(self, query: str, library: str | None = None, limit: int | None = 10) -> list[dict]:
        terms = re.findall(r"[a-z0-9_]+", (query or "").lower())
        if not terms:
            raise ToolError("search_docs needs a keyword, e.g. search_docs(query=\"packing\").")
        if library and library not in INDEXED:
            raise ToolError(f"Unknown library {library!r}: use one of {', '.join(LIBRARIES)}, or leave it out.")
        limit = max(1, min(int(limit or 10), MAX_LIMIT))
        cache_dir = self.ctx.settings.data_dir / "cache" if self.ctx else None
        entries = [e for lib in ([library] if library else LIBRARIES) for e in build_index(lib, cache_dir)]
        scored = sorted(((score(e, terms), e) for e in entries), key=lambda pair: -pair[0])
        return [{"name": e["name"], "kind": e["kind"], "snippet": snippet(e, terms)}
                for points, e in scored[:limit] if points > 0]
