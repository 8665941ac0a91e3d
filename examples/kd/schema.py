"""Strict configuration checking against a schema of known keys.

Data-independent (no torch), shared by the image study and the text study: each study
declares its own schema (a nested dict of :class:`Field` objects) and calls :func:`validate`
before anything is trained or written. Every error is a :class:`ConfigError` (a ``ValueError``)
with a one-line message naming the key, e.g. ::

    unknown key 'student.epoch' (did you mean student.epochs?)
    loss.tau must be > 0, got 0

API
---
``validate(cfg, schema, where="config") -> dict``  a checked, normalised deep copy of ``cfg``
``known_keys(schema) -> list[str]``                every dotted key of a schema
``parse_int_list(text, what="--seeds", min_value=0) -> list[int]``
Fields: ``Int(min, max)``, ``Float(min, max, min_open, max_open)``, ``Bool()``, ``Str()``,
``Choice(*values)``, ``ListOf(field, min_len, unique)``, ``AnyOf(*fields)``, ``Anything()``;
each takes ``none=True`` to allow ``null``. A nested dict is a section; a section given as
``Section(fields, open=True)`` accepts unknown keys (e.g. free-form metadata).

>>> schema = {"student": {"epochs": Int(min=1)}, "loss": {"tau": Float(min=0, min_open=True)}}
>>> validate({"student": {"epochs": 3}, "loss": {"tau": 2}}, schema)
{'student': {'epochs': 3}, 'loss': {'tau': 2.0}}
>>> validate({"student": {"epoch": 3}}, schema)
Traceback (most recent call last):
...
examples.kd.schema.ConfigError: unknown key 'student.epoch' in config (did you mean student.epochs?)
"""

from __future__ import annotations

import copy
import difflib
import math
from typing import Mapping

__all__ = ["ConfigError", "Field", "Int", "Float", "Bool", "Str", "Choice", "ListOf", "AnyOf", "Anything",
           "Section", "validate", "known_keys", "parse_int_list"]


class ConfigError(ValueError):
    """A configuration value or key that the study does not accept (one-line message)."""


class Field:
    """A leaf of a schema: :meth:`check` returns the normalised value or raises ConfigError."""

    def __init__(self, none: bool = False, doc: str = ""):
        self.none, self.doc = none, doc

    def check(self, value, key: str):
        if value is None:
            if self.none:
                return None
            raise ConfigError(f"{key} must be {self.describe()}, got null")
        return self._check(value, key)

    def _check(self, value, key):  # pragma: no cover - overridden
        return value

    def describe(self) -> str:
        return "a value"


def _num_range(lo, hi, lo_open, hi_open):
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi:g}")
    return " and ".join(parts)


class _Number(Field):
    kind = "a number"

    def __init__(self, min=None, max=None, min_open=False, max_open=False, none=False, doc=""):
        super().__init__(none, doc)
        self.lo, self.hi, self.lo_open, self.hi_open = min, max, min_open, max_open

    def describe(self):
        r = _num_range(self.lo, self.hi, self.lo_open, self.hi_open)
        return self.kind + (f" {r}" if r else "")

    def _range(self, v, key):
        bad = ((self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)))
               or (self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi))))
        if bad:
            raise ConfigError(f"{key} must be {_num_range(self.lo, self.hi, self.lo_open, self.hi_open)}, "
                              f"got {v!r}")
        return v


class Int(_Number):
    """An integer (``bool`` is not an integer here); ``3.0`` is accepted as 3."""

    kind = "an integer"

    def _check(self, value, key):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be {self.describe()}, got {value!r}")
        return self._range(value, key)


class Float(_Number):
    """A finite real number, normalised to ``float`` (so ``1`` and ``1.0`` give one identity)."""

    kind = "a number"

    def _check(self, value, key):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be {self.describe()}, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
        return self._range(value, key)


class Bool(Field):
    def describe(self):
        return "true or false"

    def _check(self, value, key):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value


class Str(Field):
    def describe(self):
        return "a string"

    def _check(self, value, key):
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value


class Choice(Field):
    """One of fixed values; a wrong string names the closest valid ones. ``aliases`` maps other
    spellings to a value (YAML reads a bare ``off`` as ``false``: ``aliases={False: "off"}``)."""

    def __init__(self, *values, none=False, doc="", aliases=None):
        super().__init__(none, doc)
        self.values = tuple(values)
        self.aliases = dict(aliases or {})

    def describe(self):
        return "one of " + ", ".join(map(str, self.values))

    def _check(self, value, key):
        for alias, target in self.aliases.items():
            if value == alias and type(value) is type(alias):
                return target
        if value in self.values and type(value) in {type(v) for v in self.values}:
            return value
        near = difflib.get_close_matches(str(value), [str(v) for v in self.values], n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise ConfigError(f"{key} must be {self.describe()}, got {value!r}{hint}")


class ListOf(Field):
    def __init__(self, item: Field, min_len=0, max_len=None, unique=False, none=False, doc=""):
        super().__init__(none, doc)
        self.item, self.min_len, self.max_len, self.unique = item, min_len, max_len, unique

    def describe(self):
        n = f"at least {self.min_len} " if self.min_len else ""
        return f"a list of {n}items, each {self.item.describe()}"

    def _check(self, value, key):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list ([a, b, ...]), got {value!r}")
        if len(value) < self.min_len or (self.max_len is not None and len(value) > self.max_len):
            raise ConfigError(f"{key} must be {self.describe()}, got {len(value)} item(s)")
        out = [self.item.check(v, f"{key}[{i}]") for i, v in enumerate(value)]
        if self.unique and len(set(map(repr, out))) != len(out):
            raise ConfigError(f"{key} has repeated items: {value!r}")
        return out


class AnyOf(Field):
    """The first of several fields that accepts the value (e.g. ``"auto"`` or an integer)."""

    def __init__(self, *fields, none=False, doc=""):
        super().__init__(none, doc)
        self.fields = fields

    def describe(self):
        return " or ".join(f.describe() for f in self.fields)

    def _check(self, value, key):
        for f in self.fields:
            try:
                return f.check(value, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key} must be {self.describe()}, got {value!r}")


class Anything(Field):
    def _check(self, value, key):
        return value


class Section(dict):
    """A schema section; ``open=True`` accepts keys it does not list (kept unchecked)."""

    def __init__(self, fields: Mapping, open: bool = False):
        super().__init__(fields)
        self.open = open


def known_keys(schema: Mapping, prefix: str = "") -> list[str]:
    """Every dotted key of ``schema`` (sections and leaves)."""
    out = []
    for k, v in schema.items():
        out.append(prefix + k)
        if isinstance(v, Mapping):
            out += known_keys(v, prefix + k + ".")
    return out


def _unknown(key: str, schema_root: Mapping, section: Mapping, prefix: str, where: str):
    depth = key.count(".")
    full = [k for k in known_keys(schema_root) if k.count(".") == depth]  # suggest keys at the same depth
    near = difflib.get_close_matches(key, full, n=3, cutoff=0.6)
    leaf = key.rsplit(".", 1)[-1]
    near += [prefix + k for k in difflib.get_close_matches(leaf, list(section), n=3, cutoff=0.6)
             if prefix + k not in near]
    if not near:  # the same leaf name in another section (``epochs`` -> student.epochs, teacher.epochs)
        near = [k for k in known_keys(schema_root) if k.rsplit(".", 1)[-1] == leaf]
    hint = f"did you mean {', '.join(near[:3])}?" if near else \
        f"valid keys here: {', '.join(prefix + k for k in section)}"
    return ConfigError(f"unknown key {key!r} in {where} ({hint})")


def validate(cfg: Mapping, schema: Mapping, where: str = "config") -> dict:
    """Check ``cfg`` against ``schema``; returns a normalised deep copy (``cfg`` is not modified).

    Keys absent from ``cfg`` stay absent (defaults belong to the code that uses them); unknown
    keys, wrong types and out-of-range values raise :class:`ConfigError` naming the dotted key
    (and, for an unknown key, the nearest valid ones).
    """
    return _validate(cfg, schema, schema, "", where)


def _validate(cfg, section, root, prefix, where):
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{prefix[:-1] or where} must be a mapping (key: value), got {cfg!r}")
    out = {}
    for k, v in cfg.items():
        key = prefix + str(k)
        if k not in section:
            if isinstance(section, Section) and section.open:
                out[k] = copy.deepcopy(v)
                continue
            raise _unknown(key, root, section, prefix, where)
        spec = section[k]
        if isinstance(spec, Mapping):
            if v is None:
                v = {}
            out[k] = _validate(v, spec, root, key + ".", where)
        else:
            out[k] = spec.check(v, key)
    return out


def parse_int_list(text, what: str = "--seeds", min_value: int | None = 0) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; empty items, non-integers, values below ``min_value`` and
    repeats raise :class:`ConfigError` naming ``what``.

    >>> parse_int_list("3, 4")
    [3, 4]
    >>> parse_int_list("0,a")
    Traceback (most recent call last):
    ...
    examples.kd.schema.ConfigError: --seeds: 'a' is not an integer (expected e.g. --seeds 0,1,2)
    """
    items = [s.strip() for s in str(text).split(",")]
    if not any(items):
        raise ConfigError(f"{what}: empty (expected e.g. {what} 0,1,2)")
    out = []
    for s in items:
        if not s:
            raise ConfigError(f"{what}: empty item in {text!r} (expected e.g. {what} 0,1,2)")
        try:
            v = int(s, 10)
        except ValueError:
            raise ConfigError(f"{what}: {s!r} is not an integer (expected e.g. {what} 0,1,2)") from None
        if min_value is not None and v < min_value:
            raise ConfigError(f"{what}: {v} is below {min_value}")
        if v in out:
            raise ConfigError(f"{what}: {v} appears twice")
        out.append(v)
    return out
