"""The text study's configuration schema (checked before anything runs, like the image study's).

The profiles live in ``configs/`` next to this file; loading, merging and overrides are
:func:`examples.kd.config.load_config`'s, with this schema.
"""

from __future__ import annotations

import copy
from pathlib import Path

from .. import methods, steps
from ..config import SCHEMA as IMAGE_SCHEMA
from ..schema import Bool, Choice, Float, Int, ListOf, Str

__all__ = ["SCHEMA", "CONFIG_DIR", "PROFILES", "STEPS"]

CONFIG_DIR = Path(__file__).parent / "configs"
PROFILES = ("quick", "paper")
STEPS = steps.pipeline_steps("text")

SCHEMA = copy.deepcopy(IMAGE_SCHEMA)
SCHEMA["data"] = {"name": Choice("debian", "csv", "tiny"), "root": Str(none=True), "cache_dir": Str(none=True),
                  "classes": ListOf(Str(), min_len=2, unique=True, none=True), "min_per_class": Int(min=1),
                  "train_per_class": Int(min=1, none=True), "test_per_class": Int(min=1, none=True),
                  "num_classes": Int(min=2), "seed": Int(min=0)}
SCHEMA["model"] = {"max_len": Int(min=3, max=512), "freeze_embeddings": Bool(), "dropout": Float(min=0, max=1)}
SCHEMA["teacher"] = {"arch": Str(), "epochs": Int(min=1), "seed": Int(min=0)}   # arch checked by models.parse_arch
SCHEMA["student"] = {"arch": Str(), "epochs": Int(min=1)}
SCHEMA["optim"] = dict(IMAGE_SCHEMA["optim"], name=Choice("sgd", "adamw"))
SCHEMA["augs"] = ListOf(Choice("mixup"), min_len=1, unique=True)
# the text study runs the KD family only (CRD needs the image study's feature/memory plumbing), one pair
SCHEMA["methods"] = ListOf(Choice(*methods.names("kd")), min_len=1, unique=True)
del SCHEMA["pairs"]
SCHEMA["analysis"] = {"fig1_samples": Int(min=1), "control": Bool()}
SCHEMA["pipeline"] = ListOf(Choice(*STEPS), min_len=1)
