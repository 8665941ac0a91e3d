"""Domains: what the study needs to know about its data, in one object per kind of data.

The study (:class:`examples.kd.experiment.Study`) and its steps (:mod:`examples.kd.steps`) are
the same for images and text; a domain supplies what differs: the data (``load_data``), the
networks (``model_fn``), a batch's loss (``batch_loss``, :class:`examples.kd.train.Objective`),
the teacher as the students use it (``prepare_teacher``: the text study caches its sentence
representations), the settings beyond the shared run identity (``extra_identity``), Fig. 1's
kinds of sample and batches, its configuration (profiles, schema) and its command line's name.

:class:`ImageDomain` is the default; :class:`examples.kd.text.domain.TextDomain` the text study.
:func:`get` returns a domain by name. Importing this module does not import torch.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ImageDomain", "get", "NAMES"]

#: the domains' names (``python -m examples.kd --domain NAME``)
NAMES = ("image", "text")


class ImageDomain:
    """Images: the glyph set, CIFAR, IDX, ``.npz`` and image folders (:mod:`examples.kd.data`),
    CIFAR/ImageNet ResNets and the rest of Table 1's architectures (:mod:`examples.kd.models`),
    Mixup and CutMix on the pixels."""

    name = "image"
    prog = "python -m examples.kd"
    #: where ``run_dir`` goes for a profile other than the one a file names: ``runs/<prefix><profile>``
    run_prefix = ""
    #: the pipeline of ``run`` when the profile names none
    default_pipeline = ("teacher", "students", "fig1", "table1", "table3")
    #: the kinds of sample Fig. 1 compares
    fig1_kinds = ("original", "mixup", "cutmix")
    #: the ``--profile`` and ``--dataset`` help of the command line
    profiles_help = "quick | fmnist | full | gpu | paper | pairs-cpu | imagenet | imagenet-cpu"
    datasets_help = "glyphs | cifar100 | cifar10 | npz | idx | imagefolder | synthetic_imagefolder"
    #: whether ``train --method/--aug/--seed`` exists
    train_command = True

    def config(self):
        """``(config_dir, profile names, schema)`` of this domain's configuration."""
        from . import config

        return config.CONFIG_DIR, config.PROFILES, config.SCHEMA

    def doc(self) -> str:
        from . import __main__

        return __main__.__doc__

    def check(self, cfg: dict) -> None:
        """Checks beyond the schema, before anything is loaded or written (none here)."""

    def load_data(self, cfg: dict, root: Path):
        from .data import load_data

        return load_data(dict(cfg.get("data", {})), root)

    def model_fn(self, arch: str, num_classes: int):
        from .models import build_model

        return build_model(arch, num_classes)

    @property
    def batch_loss(self):
        from .train import image_loss

        return image_loss

    def prepare_teacher(self, study, model):
        """The trained teacher (eval mode, frozen) as the students' ``batch_loss`` uses it."""
        return model

    def extra_identity(self, cfg: dict) -> dict:
        """Settings beyond :func:`~examples.kd.train.run_identity` that decide a run's result."""
        return {}

    def fig1_batch(self, study, teacher, idx, kind, rng, gen):
        """Teacher logits, label order and lambda of one batch of Fig. 1's ``kind`` of sample."""
        import torch

        from .augment import mix_batch

        x, y = study.data.get("train", idx, study.device)
        alpha = study.cfg.get("aug", {}).get("alpha", 1.0)
        mb = mix_batch(x, y, "none" if kind == "original" else kind, alpha, rng, gen)
        with torch.no_grad():
            return teacher(mb.x), mb.labels, mb.lam


def get(name: str):
    """The domain ``name`` (one of :data:`NAMES`)."""
    if name == "image":
        return ImageDomain()
    if name == "text":
        from .text.domain import TextDomain

        return TextDomain()
    raise ValueError(f"unknown domain {name!r}; choose from {', '.join(NAMES)}")
