"""The text study (the paper's Table 4) as pipeline steps: teacher, students, Fig. 1, Table 4.

:class:`TextStudy` is the image study's :class:`examples.kd.experiment.Study` with the
data-dependent parts replaced: text data (:mod:`.data`), transformer models (:mod:`.models`) and
the Mixup-Transformer step (:mod:`.mixing`). Run identity and records (:mod:`examples.kd.runs`),
resume, logs and progress, the losses, the label order and the analysis are the image study's.
"""

from __future__ import annotations

import functools

import torch

from .. import analysis
from ..experiment import Study
from .data import TokenizedData, load_text
from .mixing import CachedTeacher, encode_all, mix_pooled, text_loss
from .models import build_text_model, get_tokenizer, parse_arch

__all__ = ["TextStudy"]


class TextStudy(Study):
    """Config sections used: ``data``, ``model`` (``max_len``, ``freeze_embeddings``,
    ``dropout``), ``teacher``, ``student``, ``optim``, ``loss``, ``aug``, ``methods``, ``seeds``,
    ``analysis`` (``fig1_samples``, ``control``)."""

    batch_loss = staticmethod(text_loss)

    def __init__(self, cfg: dict):
        if cfg.get("time_budget"):
            raise ValueError("time_budget is not supported by the text study; set teacher.epochs / "
                             "student.epochs instead")
        for role in ("teacher", "student"):
            parse_arch(cfg[role]["arch"])  # a bad arch fails before anything is loaded or written
        m = cfg.get("model", {})
        self.model_fn = functools.partial(build_text_model, freeze_embeddings=bool(m.get("freeze_embeddings", True)),
                                          dropout=float(m.get("dropout", 0.1)))
        super().__init__(cfg)

    def _load_data(self):
        cfg = self.cfg
        ts = load_text(dict(cfg.get("data", {})), self.root)
        base, _ = parse_arch(cfg["teacher"]["arch"])
        return TokenizedData(ts, get_tokenizer(cfg["teacher"]["arch"]), int(cfg.get("model", {}).get("max_len", 32)),
                             tokenizer_name=base)

    def _prepare_teacher(self, model):
        cache = encode_all(model, self.data, "train", self.device)
        self.log(f"teacher: cached the sentence representations of {len(cache)} training examples")
        return CachedTeacher(model, cache)

    def extra_identity(self) -> dict:
        """The model settings (the data identity already holds the tokenisation)."""
        m = self.cfg.get("model", {})
        return {"model": dict(freeze_embeddings=bool(m.get("freeze_embeddings", True)),
                              dropout=float(m.get("dropout", 0.1)))}

    def plan(self, steps_wanted):
        return None

    FIG1_KINDS = ("original", "mixup")  # Mixup-Transformer mixes representations; no CutMix

    def _fig1_batch(self, teacher, idx, kind, alpha, rng, gen):
        """Teacher logits, label order and lambda of one batch of sentences (mixed pooled
        representations for ``kind="mixup"``)."""
        x, y = self.data.get("train", idx, self.device)
        h = teacher.features(x, idx)
        mp = mix_pooled(h, h, y, "none" if kind == "original" else "mixup", alpha, rng, gen)
        with torch.no_grad():
            return teacher.head(mp.t), mp.labels, mp.lam

    def table4(self):
        """Table 4 analogue: student accuracy per method (mean with a 95 % interval over seeds,
        paired differences to KD-aug), from the runs of the current configuration only."""
        entries = self.table1_entries()
        if self.rank != 0:
            return ""
        cfg = self.cfg
        title = f"Table 4 analogue ({cfg['data'].get('name', 'debian')}, Mixup-Transformer; {{}})"
        md = analysis.table1(entries, self.out, ["mixup"], name="table4", title=title.format("best test accuracy"))
        md_last = analysis.table1(entries, self.out / "last", ["mixup"], metric="last_acc", name="table4",
                                  title=title.format("last-epoch test accuracy"))
        head = (f"Teacher {cfg['teacher']['arch']}: {self.teacher_acc:.2f}% -> student {cfg['student']['arch']} "
                f"({cfg['student']['epochs']} epochs); {self.data.num_classes} classes, "
                f"{self.data.size('train')} train / {self.data.size('test')} test sentences, "
                f"{len(cfg.get('seeds', [0]))} seed(s)\n\n")
        self.log(head + md + "\n" + md_last, echo=self.echo_tables)
        return head + md
