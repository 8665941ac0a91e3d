"""The study's methods, in one table: what each one trains with and how it is named.

Each :class:`Method` entry says which loss of :mod:`examples.kd.losses` it trains with, the
``loss.*`` settings that loss reads (exactly the ones in its runs' identity: changing ``sigma``
does not change a KD-i run), whether it trains on mixed samples, its family (the student alone,
the KD family, the CRD family), its row label in Table 1 and its line in ``--help``. The config
schema's choices, ``train --method``, the help text, Table 1's rows and Table 3's combinations
are all read from :data:`METHODS`; adding a method is one :func:`register` call here plus its
loss class in :mod:`examples.kd.losses`.

Importing this module does not import torch (the configuration is checked before torch loads);
:func:`build_loss` imports the losses when it builds one.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Method", "METHODS", "LOSS_DEFAULTS", "register", "get", "names", "loss_params", "build_loss",
           "row_name", "train_augs", "help_lines", "MIXES"]

#: every ``loss.*`` setting with its default (RepDistiller's CIFAR settings for the CRD ones)
LOSS_DEFAULTS = {"alpha": 0.95, "tau": 4.5, "beta": 3.0, "calibrate_on": "logits", "calibrated_fraction": 1.0,
                 "sigma": 2.0, "penalty_on": "probs",
                 "crd_weight": 0.8, "crd_dim": 128, "crd_k": 16384, "crd_t": 0.07, "crd_momentum": 0.5}
_INT_SETTINGS = ("crd_dim", "crd_k")
_CRD_SETTINGS = ("crd_weight", "crd_dim", "crd_k", "crd_t", "crd_momentum")
#: the augmentations a method that mixes trains with
MIXES = ("mixup", "cutmix")


@dataclass(frozen=True)
class Method:
    """One method of the study.

    ``loss``: the name of its loss class in :mod:`examples.kd.losses`, built with the keyword
    arguments ``settings`` (for a CRD method: the KD-family loss of ``base``; the training step
    adds the contrastive term). ``family``: ``"student"`` (trains without the teacher), ``"kd"``
    or ``"crd"``. ``mixes``: trained on Mixup/CutMix samples (else on un-mixed images only,
    augmentation ``none``). ``label``: Table 1's row label; ``long_label`` the label in the
    main pair's analogue table. ``summary``: its line in ``--help``. ``row``: how a run's name
    reads its settings (default: the method's name). ``control``: a control row trained with
    the same method and other settings, as ``(row, label, settings)`` (KD-i against the raw
    teacher).
    """

    name: str
    label: str
    family: str
    mixes: bool
    loss: str
    settings: tuple = ()
    summary: str = ""
    base: str = ""
    long_label: str = ""
    row: object = None
    control: tuple | None = None

    @property
    def kd_method(self) -> str:
        """The KD-family method whose loss this one trains with (``crd-i -> kd-i``)."""
        return self.base or self.name


#: name -> :class:`Method`, in Table 1's row order
METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to :data:`METHODS` (its name must be new)."""
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r} is registered twice")
    METHODS[method.name] = method
    return method


def get(name: str) -> Method:
    """The registered method ``name``; a ``ValueError`` naming the choices otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None


def names(family=None, mixes=None) -> tuple:
    """The registered methods' names, in Table 1's order, of ``family`` (a name or a tuple of
    names) and with ``mixes`` when given."""
    fams = (family,) if isinstance(family, str) else family
    return tuple(m.name for m in METHODS.values()
                 if (fams is None or m.family in fams) and (mixes is None or m.mixes == mixes))


def train_augs(name: str) -> tuple:
    """The augmentations ``train --method name`` accepts, its default first."""
    return MIXES if get(name).mixes else ("none",)


def _kdi_row(loss: dict, main: dict) -> str:
    f = float(loss.get("calibrated_fraction", LOSS_DEFAULTS["calibrated_fraction"]))
    return "kd-i" if f == 1.0 else "kd-i-raw" if f == 0.0 else f"kd-i-f{f:g}"


def _kdp_row(loss: dict, main: dict) -> str:
    sigma = float(loss.get("sigma", LOSS_DEFAULTS["sigma"]))
    return "kd-p" if sigma == float(main.get("sigma", LOSS_DEFAULTS["sigma"])) else f"kd-p-sigma{sigma:g}"


def row_name(name: str, loss: dict, main: dict) -> str:
    """The name a run of method ``name`` with loss settings ``loss`` has in the study (before its
    augmentation and seed), when the profile's loss settings are ``main``: KD-i runs name their
    calibrated fraction (``kd-i-f0.5``; ``kd-i-raw`` for 0), KD-p runs a sigma other than the
    profile's (``kd-p-sigma3``); every other method its name."""
    m = get(name)
    return m.row(loss, main) if m.row is not None else m.name


_KD = ("alpha", "tau")
_KDI = _KD + ("beta", "calibrate_on", "calibrated_fraction")
_KDP = _KD + ("sigma", "penalty_on")
register(Method("ce", "Student", "student", False, "CELoss", summary="the student alone, cross-entropy "
                "(Table 1's Student row)", long_label="Student alone (CE)"))
register(Method("kd", "KD", "kd", False, "KDLoss", _KD, "Hinton et al. KD (Eq. 2)"))
register(Method("kd-aug", "KD-aug", "kd", True, "KDAugLoss", _KD, "KD on Mixup/CutMix samples (Eq. 3)"))
register(Method("kd-i", "KD-i", "kd", True, "KDILoss", _KDI, "KD-aug + isotonic soft labels (Eq. 9)",
                row=_kdi_row, control=("kd-i-raw", "KD-i, raw teacher (control)", {"calibrated_fraction": 0.0})))
register(Method("kd-p", "KD-p", "kd", True, "KDPLoss", _KDP, "KD-aug + order penalty (Eq. 12)", row=_kdp_row))
register(Method("crd", "CRD", "crd", False, "KDLoss", _KD + _CRD_SETTINGS,
                "KD + CRD (contrastive, Tian et al.)", base="kd"))
register(Method("crd-aug", "CRD-aug", "crd", True, "KDAugLoss", _KD + _CRD_SETTINGS, "KD-aug + CRD", base="kd-aug"))
register(Method("crd-i", "CRD-i", "crd", True, "KDILoss", _KDI + _CRD_SETTINGS, "KD-i + CRD", base="kd-i"))
register(Method("crd-p", "CRD-p", "crd", True, "KDPLoss", _KDP + _CRD_SETTINGS, "KD-p + CRD", base="kd-p"))


def loss_params(method: str, cfg: dict) -> dict:
    """The loss settings ``method`` uses, defaults filled in, numbers as floats (a run's identity:
    changing ``sigma`` does not change a KD-i run).

    Examples
    --------
    >>> loss_params("kd-p", {"tau": 2, "beta": 1.0})
    {'alpha': 0.95, 'tau': 2.0, 'sigma': 2.0, 'penalty_on': 'probs'}
    """
    out = {}
    for k in get(method).settings:
        v = cfg.get(k, LOSS_DEFAULTS[k])
        out[k] = (int(v) if k in _INT_SETTINGS else float(v)) \
            if isinstance(v, (int, float)) and not isinstance(v, bool) else v
    return out


def build_loss(method: str, cfg: dict):
    """The loss module of ``method`` from a config's ``loss`` section: its class in
    :mod:`examples.kd.losses` with the settings it reads. For a CRD method this is the
    KD-family part (the training step adds the contrastive term)."""
    from . import losses

    m = get(method)
    p = loss_params(m.kd_method, cfg)
    if "tau" in p and p["tau"] <= 0:
        raise ValueError(f"loss.tau must be > 0, got {p['tau']}")
    for key in ("calibrate_on", "penalty_on"):
        if key in p and p[key] not in ("logits", "probs"):
            raise ValueError(f"loss.{key} must be 'logits' or 'probs', got {p[key]!r}")
    return getattr(losses, m.loss)(**p)


def help_lines() -> str:
    """The methods' lines of ``--help``: name and summary, KD family beside CRD family."""
    single = [m for m in METHODS.values() if m.family != "crd"]
    crd = {m.base: m for m in METHODS.values() if m.family == "crd"}
    lines = []
    for m in single:
        left = f"  {m.name:8s} {m.summary}"
        c = crd.get(m.name)
        lines.append(f"{left:49s} {c.name:8s} {c.summary}" if c is not None and len(left) <= 48 else left)
    return "\n".join(line.rstrip() for line in lines)
