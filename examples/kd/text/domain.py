"""The text domain (the paper's Table 4): sentences instead of images, for the same study.

Text data (:mod:`.data`: the Debian package index, CSV files, a tiny generated set), transformer
networks (:mod:`.models`: a fine-tuned all-MiniLM-L6-v2 teacher, a student initialised from
its layers) and the Mixup-Transformer step (:mod:`.mixing`: sentence representations are mixed,
not tokens; the teacher's are computed once and cached). Everything else (run identity and
records, resume, the losses, the label order, the analysis, the command line) is the study's.
Importing this module does not import torch.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["TextDomain"]


class TextDomain:
    """Config sections used: ``data``, ``model`` (``max_len``, ``freeze_embeddings``,
    ``dropout``), ``teacher``, ``student``, ``optim``, ``loss``, ``aug``, ``methods``, ``seeds``,
    ``analysis`` (``fig1_samples``, ``control``)."""

    name = "text"
    prog = "python -m examples.kd.text"
    run_prefix = "text-"
    default_pipeline = ("teacher", "students", "fig1", "table4")
    fig1_kinds = ("original", "mixup")  # Mixup-Transformer mixes representations; no CutMix
    profiles_help = "quick | paper"
    datasets_help = "debian | csv | tiny"
    train_command = False
    #: the model settings (``model`` section), read by :meth:`check`
    _model = dict(freeze_embeddings=True, dropout=0.1)

    def config(self):
        from . import config

        return config.CONFIG_DIR, config.PROFILES, config.SCHEMA

    def doc(self) -> str:
        from . import __main__

        return __main__.__doc__

    def check(self, cfg: dict) -> None:
        from .models import parse_arch

        if cfg.get("time_budget"):
            raise ValueError("time_budget is not supported by the text study; set teacher.epochs / "
                             "student.epochs instead")
        for role in ("teacher", "student"):
            parse_arch(cfg[role]["arch"])  # a bad arch fails before anything is loaded or written
        self._model = dict(freeze_embeddings=bool(cfg.get("model", {}).get("freeze_embeddings", True)),
                           dropout=float(cfg.get("model", {}).get("dropout", 0.1)))

    def load_data(self, cfg: dict, root: Path):
        from .data import TokenizedData, load_text
        from .models import get_tokenizer, parse_arch

        ts = load_text(dict(cfg.get("data", {})), root)
        base, _ = parse_arch(cfg["teacher"]["arch"])
        return TokenizedData(ts, get_tokenizer(cfg["teacher"]["arch"]), int(cfg.get("model", {}).get("max_len", 32)),
                             tokenizer_name=base)

    def model_fn(self, arch: str, num_classes: int):
        from .models import build_text_model

        return build_text_model(arch, num_classes, **self._model)

    @property
    def batch_loss(self):
        from .mixing import text_loss

        return text_loss

    def prepare_teacher(self, study, model):
        from .mixing import CachedTeacher, encode_all

        cache = encode_all(model, study.data, "train", study.device)
        study.log(f"teacher: cached the sentence representations of {len(cache)} training examples")
        return CachedTeacher(model, cache)

    def extra_identity(self, cfg: dict) -> dict:
        """The model settings (the data identity already holds the tokenisation)."""
        return {"model": dict(self._model)}

    def fig1_batch(self, study, teacher, idx, kind, rng, gen):
        """Teacher logits, label order and lambda of one batch of sentences (mixed pooled
        representations for ``kind="mixup"``)."""
        import torch

        from .mixing import mix_pooled

        x, y = study.data.get("train", idx, study.device)
        h = teacher.features(x, idx)
        mp = mix_pooled(h, h, y, "none" if kind == "original" else "mixup",
                        study.cfg.get("aug", {}).get("alpha", 1.0), rng, gen)
        with torch.no_grad():
            return teacher.head(mp.t), mp.labels, mp.lam
