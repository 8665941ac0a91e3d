"""Text data for the Table 4 analogue. Nothing is downloaded.

Sources (``data.name``):

* ``debian`` (default): a real topic-classification set built on this machine from its Debian
  package index (``apt-cache dumpavail``): each package's one-line *short description* is the
  text, its *section* (``games``, ``science``, ``net``, ...; a ``contrib/`` or ``non-free/``
  prefix is dropped) the label. One record per package name; a description that occurs under
  two sections is dropped, one that repeats within a section is kept once. The split is fixed per
  package (a package is a test example when ``crc32(name) % 5 == 0``, about 20 %), so it does
  not depend on the seed or on which other packages the index holds. The parsed set is cached
  as ``<cache_dir>/debian.json`` on first use and then reused as it is (the data set is frozen
  even if the index is updated; delete the file to rebuild). ``data.classes`` picks sections
  (default: every section with at least ``data.min_per_class`` training examples), and
  ``train_per_class`` / ``test_per_class`` cap the examples per class (first ones in the fixed
  crc32 order).
* ``csv``: ``<data_root>/train.csv`` and ``<data_root>/test.csv``, UTF-8, header ``text,label``
  (other columns are ignored); labels are class names or integers (integers are ordered by value,
  names alphabetically). This is how SST-2, TREC or DBPedia files are used.
* ``tiny``: a small generated set for the tests (classes of topic words among shared filler
  words, seeded).

Every source gives a :class:`TextSet` (strings and integer labels). :class:`TokenizedData`
tokenises it once and serves batches with the image data's interface (``num_classes``,
``size(split)``, ``get(split, idx, device)``): ``x`` is a (B, 2, L) int64 tensor holding the token
ids (``x[:, 0]``) and the attention mask (``x[:, 1]``), trimmed to the longest sentence of the
batch.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["TextSet", "TokenizedData", "load_text", "read_csv_split", "load_csv", "make_tiny",
           "parse_dumpavail", "load_debian"]


@dataclass
class TextSet:
    """Texts and integer labels of both splits; ``classes[i]`` names label ``i``."""

    name: str
    classes: list
    train_text: list
    train_y: np.ndarray
    test_text: list
    test_y: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def digest(self) -> str:
        """SHA-256 (first 16 hex digits) of the class names, texts and labels of both splits."""
        h = hashlib.sha256()
        h.update(json.dumps([self.classes, self.train_text, self.test_text]).encode())
        h.update(np.asarray(self.train_y, np.int64).tobytes())
        h.update(np.asarray(self.test_y, np.int64).tobytes())
        return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- Debian index
def parse_dumpavail(text: str) -> list:
    """``[(package, section, short description)]`` from ``apt-cache dumpavail`` output.

    Stanzas without a section or an English short description are skipped; the first stanza of
    a package name wins (the index may list several versions).

    Examples
    --------
    >>> parse_dumpavail("Package: a\\nSection: contrib/games\\nDescription: A game\\n long text\\n\\n"
    ...                 "Package: a\\nSection: x\\nDescription: again\\n")
    [('a', 'games', 'A game')]
    """
    out, seen = [], set()
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            k, v = line.split(":", 1)
            fields.setdefault(k.strip(), v.strip())
        pkg, sec, desc = fields.get("Package"), fields.get("Section"), fields.get("Description")
        if not pkg or not sec or not desc or pkg in seen:
            continue
        seen.add(pkg)
        out.append((pkg, sec.rsplit("/", 1)[-1], desc))
    return out


def _dedupe(records: list) -> list:
    """Keep one record per description; drop descriptions that occur under two sections."""
    secs = {}
    for _, sec, desc in records:
        secs.setdefault(desc.lower(), set()).add(sec)
    out, seen = [], set()
    for pkg, sec, desc in records:
        key = desc.lower()
        if len(secs[key]) == 1 and key not in seen:
            seen.add(key)
            out.append((pkg, sec, desc))
    return out


def _is_test(pkg: str) -> bool:
    return zlib.crc32(pkg.encode()) % 5 == 0


def _debian_records(cache_dir: Path) -> list:
    cache = Path(cache_dir) / "debian.json"
    if cache.is_file():
        return [tuple(r) for r in json.loads(cache.read_text())["records"]]
    if shutil.which("apt-cache") is None:
        raise FileNotFoundError("--dataset debian needs apt-cache (a Debian/Ubuntu system); "
                                "use --dataset csv --data-root DIR (DIR/train.csv, DIR/test.csv)")
    try:
        raw = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, check=True).stdout
    except subprocess.CalledProcessError as e:
        raise FileNotFoundError(f"apt-cache dumpavail failed ({e.stderr.decode(errors='replace').strip()}); "
                                f"run `apt-get update` or use --dataset csv --data-root DIR") from None
    records = _dedupe(parse_dumpavail(raw.decode("utf-8", errors="replace")))
    if len(records) < 1000:
        raise FileNotFoundError(f"the Debian package index has {len(records)} described packages; "
                                f"run `apt-get update` (as root) or use --dataset csv --data-root DIR")
    records.sort(key=lambda r: (zlib.crc32(r[0].encode()), r[0]))
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps({"source": "apt-cache dumpavail",
                               "index_sha256": hashlib.sha256(raw).hexdigest(),
                               "records": records}))
    tmp.replace(cache)
    return records


def load_debian(cache_dir, classes=None, min_per_class=100, train_per_class=None,
                test_per_class=None) -> TextSet:
    """The Debian short-description -> section set (see the module docstring)."""
    records = _debian_records(Path(cache_dir))
    n_train = {}
    for pkg, sec, _ in records:
        if not _is_test(pkg):
            n_train[sec] = n_train.get(sec, 0) + 1
    if classes:
        missing = [c for c in classes if c not in n_train]
        if missing:
            raise ValueError(f"data.classes: no Debian section {missing} (sections: {', '.join(sorted(n_train))})")
        classes = list(classes)
    else:
        classes = sorted(c for c, n in n_train.items() if n >= min_per_class)
    cid = {c: i for i, c in enumerate(classes)}
    split = {"train": ([], []), "test": ([], [])}
    count = {}
    caps = {"train": train_per_class, "test": test_per_class}
    for pkg, sec, desc in records:
        if sec not in cid:
            continue
        s = "test" if _is_test(pkg) else "train"
        k = count.get((s, sec), 0)
        if caps[s] is not None and k >= caps[s]:
            continue
        count[(s, sec)] = k + 1
        split[s][0].append(desc)
        split[s][1].append(cid[sec])
    return TextSet("debian", classes, split["train"][0], np.array(split["train"][1], np.int64),
                   split["test"][0], np.array(split["test"][1], np.int64))


# ----------------------------------------------------------------------------- CSV files
def read_csv_split(path) -> tuple:
    """``(texts, labels, line_numbers)`` of one CSV file with a ``text,label`` header.

    Raises ``ValueError`` naming the file and line for a non-UTF-8 byte, a missing column, an
    empty text or an empty label, and ``FileNotFoundError`` for a missing file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected {path} (CSV with header text,label)")
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise ValueError(f"{path}, line {line}: byte 0x{raw[e.start]:02x} at column {col} is not UTF-8 "
                         f"(save the file as UTF-8)") from None
    reader = csv.DictReader(io.StringIO(content, newline=""))
    fields = [f.strip() for f in (reader.fieldnames or [])]
    for need in ("text", "label"):
        if need not in fields:
            raise ValueError(f"{path}, line 1: the header has no {need!r} column "
                             f"(found {', '.join(map(repr, fields)) or 'nothing'}; expected text,label)")
    reader.fieldnames = fields
    texts, labels, lines = [], [], []
    for row in reader:
        line = reader.line_num
        text, label = row.get("text"), row.get("label")
        if text is None or not text.strip():
            raise ValueError(f"{path}, line {line}: empty text")
        if label is None or not label.strip():
            raise ValueError(f"{path}, line {line}: empty label")
        texts.append(text.strip())
        labels.append(label.strip())
        lines.append(line)
    if not texts:
        raise ValueError(f"{path}: no examples after the header")
    return texts, labels, lines


def _is_int(s: str) -> bool:
    try:
        int(s)
        return True
    except ValueError:
        return False


def load_csv(root) -> TextSet:
    """``<root>/train.csv`` and ``<root>/test.csv`` (see the module docstring)."""
    root = Path(root) if root else None
    if root is None:
        raise FileNotFoundError("--dataset csv needs --data-root DIR with DIR/train.csv and DIR/test.csv "
                                "(header text,label)")
    tr_text, tr_lab, _ = read_csv_split(root / "train.csv")
    te_text, te_lab, te_lines = read_csv_split(root / "test.csv")
    names = sorted(set(tr_lab))
    if all(_is_int(n) for n in names):
        names = sorted(names, key=int)
    cid = {c: i for i, c in enumerate(names)}
    for lab, line in zip(te_lab, te_lines):
        if lab not in cid:
            raise ValueError(f"{root / 'test.csv'}, line {line}: label {lab!r} does not occur in "
                             f"{root / 'train.csv'}")
    return TextSet("csv", names, tr_text, np.array([cid[c] for c in tr_lab], np.int64),
                   te_text, np.array([cid[c] for c in te_lab], np.int64))


# ----------------------------------------------------------------------------- tiny generated set
def make_tiny(num_classes=4, train_per_class=24, test_per_class=8, seed=0) -> TextSet:
    """A small generated set: each sentence has 3 of its class's 6 topic words (one of them,
    with probability 0.2, from another class) among 3 shared filler words, in random order."""
    rng = np.random.default_rng(seed)
    topic = [[f"t{c}w{j}" for j in range(6)] for c in range(num_classes)]
    filler = [f"f{j}" for j in range(20)]

    def sentence(c):
        words = list(rng.choice(topic[c], 3, replace=False))
        if rng.random() < 0.2:
            words[0] = str(rng.choice(topic[int(rng.integers(num_classes))]))
        words += list(rng.choice(filler, 3, replace=False))
        rng.shuffle(words)
        return " ".join(words)

    out = {}
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        y = np.repeat(np.arange(num_classes), n)
        out[split] = ([sentence(int(c)) for c in y], y.astype(np.int64))
    return TextSet("tiny", [f"class{c}" for c in range(num_classes)], out["train"][0], out["train"][1],
                   out["test"][0], out["test"][1])


def load_text(cfg: dict, run_dir) -> TextSet:
    """The :class:`TextSet` named by a config's ``data`` section."""
    name = cfg.get("name", "debian")
    cache = Path(cfg.get("cache_dir") or Path(run_dir) / "data")
    if name == "debian":
        return load_debian(cache, cfg.get("classes"), cfg.get("min_per_class", 100),
                           cfg.get("train_per_class"), cfg.get("test_per_class"))
    if name == "csv":
        return load_csv(cfg.get("root"))
    if name == "tiny":
        return make_tiny(cfg.get("num_classes", 4), cfg.get("train_per_class", 24),
                         cfg.get("test_per_class", 8), cfg.get("seed", 0))
    raise ValueError(f"text data.name must be 'debian', 'csv' or 'tiny', got {name!r}")


# ----------------------------------------------------------------------------- tokenised batches
class TokenizedData:
    """A :class:`TextSet` tokenised once (``tokenizer.encode(texts, max_len)`` -> ids, mask)."""

    def __init__(self, ts: TextSet, tokenizer, max_len: int, tokenizer_name: str = ""):
        self.text = ts
        self.num_classes = ts.num_classes
        self.classes = ts.classes
        #: part of every run's identity: the examples' content hash and how they were tokenised
        self.identity = dict(name=ts.name, digest=ts.digest(), tokenizer=tokenizer_name, max_len=int(max_len))
        self.x, self.y = {}, {}
        for split, texts, y in (("train", ts.train_text, ts.train_y), ("test", ts.test_text, ts.test_y)):
            ids, mask = tokenizer.encode(texts, max_len)
            self.x[split] = torch.stack([ids, mask], dim=1)
            self.y[split] = torch.as_tensor(y, dtype=torch.int64)

    def size(self, split: str) -> int:
        return len(self.y[split])

    def get(self, split, idx, device, gen=None):
        """Batch ``idx`` of ``split``: ``x`` (B, 2, L) trimmed to the batch's longest text, ``y`` (B,)."""
        x = self.x[split][idx]
        n = int(x[:, 1].sum(1).max()) if len(x) else 1
        return x[:, :, :max(n, 1)].to(device), self.y[split][idx].to(device)
