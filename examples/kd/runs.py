"""Run identity and result records: which saved run belongs to which settings.

Data-independent (no torch, no model code), shared by the image study and the text study.

A **run** is one training job (a teacher or a student). Its *identity* is a JSON-able mapping of
everything that determines its result: the full effective configuration of the run (model,
method, loss, optimiser, augmentation, epochs, seed, ...), the data's identity (a content hash
of the data file(s) or the generator's parameters, see :func:`file_digest`) and, for a student,
the hash of the teacher checkpoint it distils from. The run's id is its readable name plus a
digest of the identity::

    >>> ident = {"method": "kd", "seed": 0, "loss": {"tau": 4.5}, "data": {"digest": "ab12"}}
    >>> run_id("kd_none_s0", ident)
    'kd_none_s0-929b13cc07'

so a run with other settings lives in another folder and is trained, never confused with this
one. :func:`diff_identity` names what differs between two identities (for messages), and
:func:`select_records` picks the records of ``results.jsonl`` that belong to given runs, so that
tables and figures are built only from runs of the current configuration.

API
---
``canonical(obj) -> str``            the JSON text digests are taken of (sorted keys, no spaces)
``config_digest(mapping) -> str``    10 hex digits of SHA-256 of ``canonical(mapping)``
``file_digest(path) -> str``         SHA-256 (16 hex digits) of a file's bytes, or of a folder's
                                     files (relative names and bytes, sorted)
``run_id(name, identity) -> str``    ``f"{name}-{config_digest(identity)}"``
``diff_identity(a, b) -> list[str]`` ``["loss.tau: 4.5 -> 2", ...]`` (dotted keys, sorted)
``make_record(name, identity, result) -> dict``  a record: ``result`` plus run_id/name/digest/identity
``append_record(path, record)``      append one JSON line (flushed and fsynced)
``read_records(path) -> list[dict]`` every record, the last one per ``run_id``
``select_records(path, run_ids=None, **fields) -> list[dict]``
``explain_missing(root, name, identity) -> str``  what differs from the saved runs of that name
``RunStore(root, rank=0, log=print)``  the run folders under ``root`` and ``results.jsonl``:
                                     ``train_or_reuse(name, identity, train, reuse_only, resume)``
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Iterable, Mapping

__all__ = ["RunStore", "RunMissing", "canonical", "config_digest", "file_digest", "run_id", "diff_identity", "make_record",
           "append_record", "read_records", "select_records", "flatten", "explain_missing"]

DIGEST_LEN = 10


def _plain(obj):
    """JSON-able form with the normalisations that must not change an identity:
    tuples are lists, integral floats stay floats (``1.0`` and ``1`` differ on purpose: configs
    are validated and typed before they get here), Paths are strings."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"a run identity cannot hold the non-finite number {obj}")
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"a run identity holds only JSON values, got {type(obj).__name__}: {obj!r}")


def canonical(obj) -> str:
    """The canonical JSON text of ``obj`` (sorted keys, no whitespace) that digests are taken of.

    >>> canonical({"b": [1, 2.5], "a": None})
    '{"a":null,"b":[1,2.5]}'
    """
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def config_digest(cfg_subset: Mapping) -> str:
    """A short digest (10 hex digits of SHA-256) of a configuration mapping.

    Key order does not matter; values do (``1`` and ``1.0`` differ, so validate and type the
    configuration first).

    >>> config_digest({"a": 1, "b": 2}) == config_digest({"b": 2, "a": 1})
    True
    >>> config_digest({"a": 1}) == config_digest({"a": 2})
    False
    """
    return hashlib.sha256(canonical(cfg_subset).encode()).hexdigest()[:DIGEST_LEN]


_FILE_CACHE: dict = {}


def file_digest(path) -> str:
    """SHA-256 (first 16 hex digits) of a file's content, or of a folder's files.

    A folder hashes every file below it in sorted order, each as its relative name and its
    bytes. Results are cached per process by ``(path, size, mtime)`` of every file.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"cannot hash {p}: no such file or folder")
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    key = (str(p.resolve()), tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    if key in _FILE_CACHE:
        return _FILE_CACHE[key]
    h = hashlib.sha256()
    for f in files:
        if p.is_dir():
            h.update(f.relative_to(p).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    out = h.hexdigest()[:16]
    _FILE_CACHE[key] = out
    return out


def run_id(name: str, identity: Mapping) -> str:
    """The id (and folder name) of a run: its readable ``name`` plus the identity's digest."""
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"run name must be a non-empty folder name, got {name!r}")
    return f"{name}-{config_digest(identity)}"


def flatten(d: Mapping, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists are values)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def diff_identity(a: Mapping, b: Mapping) -> list[str]:
    """What differs from identity ``a`` to identity ``b``, one ``"key: old -> new"`` per key.

    >>> diff_identity({"loss": {"tau": 4.5}, "seed": 0}, {"loss": {"tau": 2}, "seed": 0, "x": 1})
    ['loss.tau: 4.5 -> 2', 'x: (absent) -> 1']
    """
    fa, fb = flatten(_plain(a)), flatten(_plain(b))
    out = []
    for k in sorted(set(fa) | set(fb)):
        va, vb = fa.get(k, "(absent)"), fb.get(k, "(absent)")
        if canonical([va]) != canonical([vb]):
            out.append(f"{k}: {va} -> {vb}")
    return out


def make_record(name: str, identity: Mapping, result: Mapping) -> dict:
    """A result record: the fields of ``result`` plus ``run_id``, ``name``, ``digest`` and
    ``identity`` (``result`` may not use those four keys)."""
    clash = {"run_id", "name", "digest", "identity"} & set(result)
    if clash:
        raise ValueError(f"result fields {sorted(clash)} are reserved for the record")
    return dict(result, run_id=run_id(name, identity), name=name, digest=config_digest(identity),
                identity=_plain(identity))


def append_record(path, record: Mapping) -> None:
    """Append ``record`` as one JSON line to ``path`` (created with its folder if missing)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(_plain(record)) + "\n"
    with open(p, "a") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_records(path) -> list[dict]:
    """Every record of a JSON-lines file, the last one for each ``run_id`` (file order kept).

    A missing file gives ``[]``; a truncated last line (an interrupted write) is skipped; any
    other unreadable line raises ``ValueError`` naming the line.
    """
    p = Path(path)
    if not p.exists():
        return []
    lines = p.read_text().splitlines()
    seen: dict = {}
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:
                continue
            raise ValueError(f"{p}:{i + 1}: not a JSON record ({e})") from None
        seen.pop(r.get("run_id"), None)
        seen[r.get("run_id")] = r
    return list(seen.values())


def _get(rec: Mapping, key: str):
    if key in rec:
        return rec[key]
    node = rec.get("identity", {})
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


_MISSING = object()


def select_records(results_path, run_ids: Iterable[str] | None = None, **fields) -> list[dict]:
    """The records of ``results_path`` that belong to the given runs and match ``fields``.

    ``run_ids``: keep only these runs (``None``: any). ``fields``: ``key=value`` equalities, looked
    up first among the record's own fields, then in its identity (dots as ``__``:
    ``select_records(p, loss__tau=4.5)``). Records without the field do not match.
    """
    want = None if run_ids is None else set(run_ids)
    out = []
    for r in read_records(results_path):
        if want is not None and r.get("run_id") not in want:
            continue
        if all(_get(r, k.replace("__", ".")) == v for k, v in fields.items()):
            out.append(r)
    return out


def explain_missing(root, name: str, identity: Mapping) -> str:
    """Why run ``name`` with ``identity`` is not reusable under ``root``: the saved runs of the
    same name (folders ``<name>-<digest>`` holding ``identity.json``) and what differs from the
    nearest one. Used where the user asked to reuse and nothing may be trained."""
    want = run_id(name, identity)
    others = []
    for f in sorted(Path(root).glob(f"{name}-*/identity.json")):
        try:
            saved = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if f.parent.name != want and f.parent.name.rsplit("-", 1)[0] == name:
            others.append((len(diff_identity(saved, identity)), f.parent.name, diff_identity(saved, identity)))
    if (Path(root) / want / "identity.json").exists():
        return f"run {want} under {root} has not finished (its settings match; resume it by training)"
    if not others:
        return f"no saved run {name!r} under {root} (wanted {want})"
    n, other, diff = min(others)
    return (f"no saved run {name!r} with the current settings under {root} (wanted {want}); "
            f"the nearest saved one, {other}, differs in: " + "; ".join(diff))


class RunMissing(RuntimeError):
    """``reuse_only``: the run with the current settings has not been trained."""


class RunStore:
    """The runs of one study: a folder ``<root>/<run id>/`` per run (``identity.json`` while it
    trains, ``result.json`` once finished) and ``<root>/results.jsonl``, the records tables are
    built from. Only rank 0 (``rank``) writes; ``log`` takes one-line messages.

    :meth:`train_or_reuse` is the one place that decides whether a run is trained: a finished
    run of the same identity is reused, ``reuse_only`` never trains (:class:`RunMissing` names
    what differs from the saved runs of that name), ``resume=False`` trains again.
    """

    def __init__(self, root, rank: int = 0, log=None):
        self.root, self.rank = Path(root), int(rank)
        self.log = log or (lambda m: print(m, flush=True))

    @property
    def results_path(self) -> Path:
        return self.root / "results.jsonl"

    def folder(self, rid: str) -> Path:
        return self.root / rid

    def finished(self, rid: str, identity: Mapping):
        """The saved record of a finished run ``rid`` of this identity, or ``None``."""
        done = self.folder(rid) / "result.json"
        if done.exists():
            prev = json.loads(done.read_text())
            if prev.get("run_id") == rid and prev.get("identity") == json.loads(canonical(identity)):
                return prev
        return None

    def _open(self, name: str, rid: str, identity: Mapping) -> Path:
        out = self.folder(rid)
        if self.rank == 0:
            if not (out / "identity.json").exists():
                msg = explain_missing(self.root, name, identity)
                if "differs in" in msg:  # the same run name with other settings: say why it trains anew
                    self.log(f"{name}: training a new run ({msg.split('; ', 1)[1]})")
            out.mkdir(parents=True, exist_ok=True)
            _atomic_text(json.dumps(json.loads(canonical(identity)), indent=1), out / "identity.json")
        return out

    def _close(self, out: Path, record: Mapping) -> None:
        if self.rank == 0:
            _atomic_text(json.dumps(record, indent=1), out / "result.json")
            # A finished run is reused from result.json and its weights: the resume checkpoint
            # (weights plus optimizer state, 3x the model for Adam) is dead weight (a quick text
            # run kept 2.4 GB of them), so it goes once the result is safely written.
            (out / "checkpoint.pt").unlink(missing_ok=True)

    def train_or_reuse(self, name: str, identity: Mapping, train, reuse_only=False, resume=True):
        """The record of run ``name`` with ``identity``: reused when finished (and ``resume`` or
        ``reuse_only``), else ``train(folder, run_id)`` (which returns the record, or ``None``
        when it stopped early), whose record is then written to the folder's ``result.json``."""
        rid = run_id(name, identity)
        prev = self.finished(rid, identity) if (resume or reuse_only) else None
        if prev is not None:
            return prev
        if reuse_only:
            raise RunMissing(explain_missing(self.root, name, identity))
        out = self._open(name, rid, identity)
        record = train(out, rid)
        if record is not None:
            self._close(out, record)
        return record

    def records(self) -> list[dict]:
        """Every record of ``results.jsonl`` (the last one per run id)."""
        return read_records(self.results_path)

    def add(self, record) -> None:
        """Append ``record`` to ``results.jsonl`` unless a record of its run is there already
        (a reused run); rank 0 only."""
        if record is None or self.rank != 0:
            return
        if any(r["run_id"] == record["run_id"] for r in self.records()):
            return
        append_record(self.results_path, record)


def _atomic_text(text, path: Path):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
