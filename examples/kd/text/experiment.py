"""The text study (the paper's Table 4) as pipeline steps: teacher, students, Fig. 1, Table 4,
and the generated report (:meth:`TextStudy.report`).

:class:`TextStudy` is the image study's :class:`examples.kd.experiment.Study` with the
data-dependent parts replaced: text data (:mod:`.data`), transformer models (:mod:`.models`) and
the Mixup-Transformer step (:mod:`.mixing`). Run identity and records (:mod:`examples.kd.runs`),
resume, logs and progress, the losses, the label order and the analysis are the image study's.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

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

    def _table4(self, entries, out):
        """Table 4 (best and, in ``out/last``, last-epoch accuracy) from ``entries``; its Markdown."""
        title = f"Table 4 analogue ({self.cfg['data'].get('name', 'debian')}, Mixup-Transformer; {{}})"
        md = analysis.table1(entries, out, ["mixup"], name="table4", title=title.format("best test accuracy"))
        md_last = analysis.table1(entries, out / "last", ["mixup"], metric="last_acc", name="table4",
                                  title=title.format("last-epoch test accuracy"), figure=False)
        return md, md_last

    def table4(self):
        """Table 4 analogue: student accuracy per method (mean with a 95 % interval over seeds,
        paired differences to KD-aug), from the runs of the current configuration only."""
        entries = self.table1_entries()
        if self.rank != 0:
            return ""
        cfg = self.cfg
        md, md_last = self._table4(entries, self.out)
        head = (f"Teacher {cfg['teacher']['arch']}: {self.teacher_acc:.2f}% -> student {cfg['student']['arch']} "
                f"({cfg['student']['epochs']} epochs); {self.data.num_classes} classes, "
                f"{self.data.size('train')} train / {self.data.size('test')} test sentences, "
                f"{len(cfg.get('seeds', [0]))} seed(s)\n\n")
        self.log(head + md + "\n" + md_last, echo=self.echo_tables)
        return head + md

    def report(self, out_dir=None, readme=None):
        """Write the generated report from the finished runs of the current settings, without
        training: ``text-setup``, ``text-table4``, ``text-fig1`` and ``text-measured`` as .md/.rst
        (+ .csv, .png) in ``out_dir`` (default ``<run-dir>/report``); with ``readme``, rewrite that
        Markdown file's ``<!-- report:text-* -->`` blocks (the image study's blocks are left alone).

        A missing run stops with :class:`~examples.kd.train.RunMissing` naming what differs; Fig. 1
        is read from ``analysis/fig1.json`` and must carry the current teacher and settings.
        """
        from .. import report as rep

        saved = self.reuse_only
        self.reuse_only = True
        try:
            self.teacher()
            entries = self.table1_entries()
        finally:
            self.reuse_only = saved
        cfg, md = self.cfg, {}
        out = Path(out_dir) if out_dir else self.root / "report"
        out.mkdir(parents=True, exist_ok=True)
        d, m, o = cfg.get("data", {}), cfg.get("model", {}), cfg.get("optim", {})
        md["text-setup"] = analysis.write_setup(
            self, out, f"{d.get('name', 'debian')}: {self.data.num_classes} classes, {self.data.size('train')} "
                       f"train / {self.data.size('test')} test sentences, {m.get('max_len', 32)} tokens",
            extra=[("optimiser", f"{o.get('name', 'sgd')}, lr {o.get('lr')}, batch {o.get('batch_size')}, word "
                                 f"embeddings {'frozen' if m.get('freeze_embeddings', True) else 'trained'}")])
        md["text-table4"], _ = self._table4(entries, out)
        if "fig1" in cfg.get("pipeline", []):
            fig1 = analysis.saved_analysis(self.out / "fig1.json", self._stamp("fig1"), "fig1",
                                           prog="python -m examples.kd.text")
            md["text-fig1"] = rep.write_table(fig1["rows"], out / "fig1",
                                              "Fig. 1: teacher soft-label order vs hard-label order")
            shutil.copyfile(self.out / "fig1.png", out / "fig1.png")
        folders = [self.root / self.teacher_record["run_id"]] + [self.root / e["run_id"] for e in entries]
        size = sum(f.stat().st_size for p in folders for f in p.rglob("*") if f.is_file())
        md.update(analysis.write_run_facts(
            self, out, prog="python -m examples.kd.text", name="text-measured", convergence=False,
            extra=[f"The {len(folders)} run folders of this report (teacher and students) hold "
                   f"{f'{size / 1e9:.2f} GB' if size >= 1e9 else f'{size / 1e6:.3g} MB'}."]))
        if readme:  # only the text-* blocks: the image study's share the README
            rep.update_readme(readme, md, owns=lambda name: name.startswith("text-"))
        self.log(f"report written to {out}" + (f"; README blocks updated in {readme}" if readme else ""))
        return md["text-table4"]
