"""The text study (the paper's Table 4) as pipeline steps: teacher, students, Fig. 1, Table 4.

:class:`TextStudy` is the image study's :class:`examples.kd.experiment.Study` with the
data-dependent parts replaced: text data (:mod:`.data`), transformer models (:mod:`.models`) and
the Mixup-Transformer step (:mod:`.mixing`). Run bookkeeping (resume, results.jsonl, logs,
progress), the losses, the label order and the analysis are the image study's.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np
import torch

from .. import analysis
from ..experiment import Study
from .data import TokenizedData, load_text
from .mixing import CachedTeacher, encode_all, mix_pooled, text_step
from .models import build_text_model, get_tokenizer

__all__ = ["TextStudy"]


def _file_sha(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


class TextStudy(Study):
    """Config sections used: ``data``, ``model`` (``max_len``, ``freeze_embeddings``,
    ``dropout``), ``teacher``, ``student``, ``optim``, ``loss``, ``aug``, ``methods``, ``seeds``,
    ``analysis.fig1_samples``."""

    step_fn = staticmethod(text_step)

    def __init__(self, cfg: dict):
        if cfg.get("time_budget"):
            raise ValueError("time_budget is not supported by the text study; set teacher.epochs / "
                             "student.epochs instead")
        m = cfg.get("model", {})
        self.model_fn = functools.partial(build_text_model, freeze_embeddings=bool(m.get("freeze_embeddings", True)),
                                          dropout=float(m.get("dropout", 0.1)))
        self._teacher_sha = None
        super().__init__(cfg)

    def _load_data(self):
        cfg = self.cfg
        ts = load_text(dict(cfg.get("data", {})), self.root)
        tok = get_tokenizer(cfg["teacher"]["arch"])
        self.data_digest = ts.digest()
        return TokenizedData(ts, tok, int(cfg.get("model", {}).get("max_len", 32)))

    def _prepare_teacher(self, model):
        cache = encode_all(model, self.data, "train", self.device)
        self.log(f"teacher: cached the sentence representations of {len(cache)} training examples")
        return CachedTeacher(model, cache)

    def ident(self, role: str) -> dict:
        """Data hash, tokenisation and model settings, optimiser and mixing settings; students
        add the teacher's architecture and checkpoint hash."""
        cfg = self.cfg
        out = {"data": self.data_digest, "model": dict(cfg.get("model", {})),
               "optim": dict(cfg.get("optim", {}))}
        if role == "student":
            self.teacher()
            if self._teacher_sha is None:
                self._teacher_sha = _file_sha(self.teacher_path)
            out.update(aug=dict(cfg.get("aug", {})), teacher=cfg["teacher"]["arch"], teacher_sha=self._teacher_sha)
        return out

    def plan(self, steps_wanted):
        return None

    def fig1(self):
        """Fig. 1a/1b on text: teacher order vs hard-label order on original and mixed sentences."""
        teacher = self.teacher()
        if self.rank != 0:
            return ""
        n = min(self.cfg.get("analysis", {}).get("fig1_samples", 2000), self.data.size("train"))
        idx = torch.arange(n)
        alpha = self.cfg.get("aug", {}).get("alpha", 1.0)
        stats = {}
        for kind in ("original", "mixup"):
            gen, rng = torch.Generator().manual_seed(123), np.random.default_rng(123)
            logits, labels, lams = [], [], []
            for i in range(0, n, 128):
                b = idx[i:i + 128]
                x, y = self.data.get("train", b, self.device)
                h = teacher.features(x, b)
                mp = mix_pooled(h, h, y, "none" if kind == "original" else "mixup", alpha, rng, gen)
                with torch.no_grad():
                    logits.append(teacher.head(mp.t).float().cpu())
                labels.append(mp.labels.cpu())
                lams.append(mp.lam.cpu())
            stats[kind] = analysis.order_stats(torch.cat(logits), torch.cat(labels), torch.cat(lams))
        md = analysis.fig1_figure(stats, self.out)
        self.log(md, echo=self.echo_tables)
        return md

    def table4(self):
        """Table 4 analogue: student accuracy per method (mean ± std over seeds, paired Δ vs KD-aug)."""
        self.students()
        if self.rank != 0:
            return ""
        res = [r for r in self.results() if r.get("ident", {}).get("data") == self.data_digest]
        cfg = self.cfg
        methods = cfg.get("methods")
        md = analysis.table1(res, self.out, methods, ["mixup"], name="table4",
                             title=f"Table 4 analogue ({cfg['data'].get('name', 'debian')}, "
                                   f"Mixup-Transformer; best test accuracy)", plot=True)
        md_last = analysis.table1(res, self.out / "last", methods, ["mixup"], metric="last_acc", name="table4",
                                  title="Table 4 analogue (last-epoch test accuracy)")
        t = [r for r in res if r["method"] == "teacher"]
        head = (f"Teacher {cfg['teacher']['arch']}: {t[-1]['best_acc']:.2f}% " if t else "")
        head += (f"-> student {cfg['student']['arch']}; {self.data.num_classes} classes, "
                 f"{self.data.size('train')} train / {self.data.size('test')} test sentences, "
                 f"{len(cfg.get('seeds', [0]))} seed(s)\n\n")
        self.log(head + md + "\n" + md_last, echo=self.echo_tables)
        return head + md
