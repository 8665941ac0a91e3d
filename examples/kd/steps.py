"""The study's steps, one registered function each, and the loop that runs a pipeline of them.

A step is a function ``(study, request) -> artefact``: ``study`` is the context
(:class:`examples.kd.experiment.Study`: configuration, domain, data, teachers, run store) and
``request`` the command line's step options (``method``, ``aug``, ``seed`` of ``train``;
``out``, ``readme`` of ``report``). A step that makes a table or figure returns its Markdown,
which ``run`` prints at the end; the others return None. A profile's ``pipeline`` is a list of
step names; :func:`run_pipeline` refuses a name its domain does not have.

Adding a step is one decorated function::

    @step("table9", summary="Table 9 (...)")
    def table9(study, request):
        recs = study.students(...)      # train what is missing, reuse the rest
        return analysis.write_table(...)

Importing this module does not import torch (the configuration's schema reads the step names
before anything is loaded); the steps import what they use when they run.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

__all__ = ["Step", "step", "steps_of", "pipeline_steps", "run_pipeline", "Request"]


@dataclass(frozen=True)
class Step:
    """A registered step: its ``name``, the function, the domains it belongs to, a one-line
    ``summary`` and whether a profile's ``pipeline`` may list it (``train`` needs the command
    line's ``--method``)."""

    name: str
    run: object
    domains: tuple
    summary: str = ""
    in_pipeline: bool = True


_STEPS: dict[str, dict[str, Step]] = {}  # domain -> name -> step, in registration order


def step(name: str, domains=("image", "text"), summary: str = "", in_pipeline: bool = True):
    """Register the decorated function as step ``name`` of ``domains``."""

    def register(fn):
        for d in domains:
            steps = _STEPS.setdefault(d, {})
            if name in steps:
                raise ValueError(f"step {name!r} of the {d} domain is registered twice")
            steps[name] = Step(name, fn, tuple(domains), summary, in_pipeline)
        return fn

    return register


def steps_of(domain: str) -> dict[str, Step]:
    """The steps of ``domain``, by name, in registration order."""
    if domain == "text":
        from .text import steps as _text_steps  # noqa: F401  (registers the text study's own steps)
    return dict(_STEPS.get(domain, {}))


def pipeline_steps(domain: str) -> tuple:
    """The step names a profile's ``pipeline`` may list in ``domain``."""
    return tuple(n for n, s in steps_of(domain).items() if s.in_pipeline)


def Request(**kw):
    """The step options of one command (missing ones are None)."""
    base = dict(method=None, aug=None, seed=None, out=None, readme=None)
    return SimpleNamespace(**dict(base, **kw))


def run_pipeline(study, names, request=None) -> list[str]:
    """Run the steps ``names`` in order on ``study``; returns the Markdown of the steps that make
    a table or figure. A name the study's domain does not have is a ``ValueError``."""
    steps = steps_of(study.domain.name)
    unknown = [n for n in names if n not in steps]
    if unknown:
        raise ValueError(f"unknown step {unknown[0]!r} for the {study.domain.name} study; "
                         f"its steps are {', '.join(steps)}")
    request = request or Request()
    out = []
    for n in names:
        artefact = steps[n].run(study, request)
        if isinstance(artefact, str):
            out.append(artefact)
    return out


# ----------------------------------------------------------------------------- shared steps
@step("data", domains=("image",), summary="build / load the data set and save a sample grid (analysis/data.png)")
def data_grid(study, request=None):
    if study.rank != 0 or not hasattr(study.data, "x_train"):
        return None
    import numpy as np

    from .report import plt as _plt

    d = study.data
    k = min(20, d.num_classes)
    rows = []
    for c in range(k):
        idx = (d.y_train == c).nonzero()[:6, 0]
        rows.append(np.concatenate([d.x_train[i].permute(1, 2, 0).numpy() for i in idx], axis=1))
    w = max(r.shape[1] for r in rows)
    grid = np.concatenate([np.pad(r, ((0, 0), (0, w - r.shape[1]), (0, 0))) for r in rows], axis=0)
    scale = max(1, 64 // max(1, d.x_train.shape[-1]))  # small images: enlarge (nearest) to be seen
    _plt().imsave(study.out / "data.png", grid.repeat(scale, axis=0).repeat(scale, axis=1))
    study.log(f"sample grid (6 images of each of {k} classes): {study.out / 'data.png'}")
    return None


@step("teacher", summary="train the teacher")
def teacher(study, request=None):
    study.teacher()


@step("teachers", domains=("image",), summary="train every pair's teacher")
def teachers(study, request=None):
    study.teachers()


@step("students", summary="train every student of Table 1 (methods x augmentations x seeds x pairs)")
def students(study, request=None):
    study.students()


@step("train", domains=("image",), summary="one student: --method kd-i --aug mixup --seed 0", in_pipeline=False)
def train_one(study, request):
    from . import methods

    loss = dict(study.cfg.get("loss", {}))
    row = methods.row_name(request.method, loss, loss)
    study.students([study.student_spec(row, request.method, request.aug, request.seed, loss)])


@step("fig1", summary="Fig. 1a/1b (teacher order vs hard-label order)")
def fig1(study, request=None):
    """Fig. 1a/1b: teacher order vs hard-label order on original and mixed samples."""
    import numpy as np
    import torch

    from . import analysis

    teacher_net = study.teacher()
    if study.rank != 0:
        return ""
    n = min(study.cfg.get("analysis", {}).get("fig1_samples", 2000), study.data.size("train"))
    idx = torch.arange(n)
    stats = {}
    for kind in study.domain.fig1_kinds:
        gen, rng = torch.Generator().manual_seed(123), np.random.default_rng(123)
        logits, labels, lams = [], [], []
        for i in range(0, n, 128):
            lg, lb, lm = study.domain.fig1_batch(study, teacher_net, idx[i:i + 128], kind, rng, gen)
            logits.append(lg.float().cpu())
            labels.append(lb.cpu())
            lams.append(lm.cpu())
        stats[kind] = analysis.order_stats(torch.cat(logits), torch.cat(labels), torch.cat(lams))
    md = analysis.fig1_figure(stats, study.out, stamp=study.stamp("fig1"))
    study.log(md, echo=study.echo_tables)
    return md


# ----------------------------------------------------------------------------- the image study's tables
@step("table1", domains=("image",), summary="Table 1 in the paper's layout, then the main pair's analogue")
def table1(study, request=None):
    """Table 1: the paper's layout over all pairs (``table1_pairs.*``: Teacher, Student, KD,
    KD-aug/KD-i/KD-p, CRD, CRD-aug/CRD-i/CRD-p), then the main pair's KD family with paired
    differences (``table1.*``)."""
    from . import analysis, tables

    study.teachers()
    recs = study.pair_records()
    entries = study.table1_entries()
    if study.rank != 0:
        return ""
    cfg = study.cfg
    augs = cfg.get("augs", ["mixup", "cutmix"])
    methods = cfg.get("methods", ["kd", "kd-aug", "kd-i", "kd-p"])
    t_acc = {a: r["sel_acc"] for a, r in study.teacher_records.items()}
    md_pairs = tables.table1_pairs(recs, study.pairs(), methods, augs, t_acc, study.out)
    if "ce" not in methods:
        md_pairs += "\n(Student row: add `ce` to `methods` to train the student alone.)\n"
    md, md_last = analysis.table1_selected(entries, study.out, augs)
    head = (f"Teacher {cfg['teacher']['arch']}: {study.teacher_acc:.2f}% (test accuracy of the selected "
            f"epoch, the checkpoint students learn from) -> student {cfg['student']['arch']} "
            f"({cfg['student']['epochs']} epochs); {len(cfg.get('seeds', [0]))} seed(s)\n\n")
    study.log(md_pairs + "\n" + head + md + "\n" + md_last, echo=study.echo_tables)
    return md_pairs + "\n" + head + md


@step("table2", domains=("image",), summary="Table 2, ImageNet: top-1 / top-5 (--profile imagenet)")
def table2(study, request=None):
    """Table 2 (ImageNet): top-1 / top-5 of the main pair's teacher, student and KD family."""
    from . import tables

    study.teacher()
    recs = study.pair_records([study.main_pair])
    if study.rank != 0:
        return ""
    md = tables.table2(recs, study.main_pair, study.cfg.get("methods"), study.cfg.get("augs"),
                       study.teacher_record, study.out)
    study.log(md, echo=study.echo_tables)
    return md


@step("table3", domains=("image",), summary="Table 3 (median step time ratio to KD)")
def table3(study, request=None):
    """Table 3: interleaved step-time benchmark of every (method, augmentation) of the KD family,
    each a call of the training loop's own :func:`~examples.kd.train.train_step`."""
    from . import analysis
    from .timing import step_times, training_medians

    teacher_net = study.teacher()
    if study.rank != 0:
        return ""
    times = step_times(study, teacher_net)
    md = analysis.timing_table(times, training_medians(study), study.out, stamp=study.stamp("table3"))
    study.log(md, echo=study.echo_tables)
    return md


def _sweep(study, name):
    from . import analysis

    entries = study.sweep_entries(name)
    if study.rank != 0:
        return ""
    aug = study.cfg.get("analysis", {}).get("sweep_aug", "mixup")
    md = analysis.sweep_figure(entries, study.out, name, *analysis.sweep_labels(name, aug))
    study.log(md, echo=study.echo_tables)
    return md


@step("fig4", domains=("image",), summary="Fig. 4 (KD-i accuracy vs calibrated fraction)")
def fig4(study, request=None):
    return _sweep(study, "fig4")


@step("fig5", domains=("image",), summary="Fig. 5 (KD-p accuracy vs sigma)")
def fig5(study, request=None):
    return _sweep(study, "fig5")


@step("report", domains=("image",), summary="write the generated report from the finished runs, without training")
def report(study, request=None):
    """Write the generated report (tables .md/.rst/.csv, figures) from the current runs.

    Never trains: every run must exist with the current settings (otherwise
    :class:`~examples.kd.runs.RunMissing` names what differs). Fig. 1 and Table 3 are read from
    ``analysis/`` and must carry the current teacher and settings.
    """
    from pathlib import Path

    from . import analysis
    from . import report as rep

    if study.rank != 0:
        return None
    request = request or Request()
    study.teacher(reuse_only=True)
    out = Path(request.out) if request.out else study.root / "report"
    entries = study.table1_entries(reuse_only=True)
    ids = {e["run_id"] for e in entries}
    pipeline = study.cfg.get("pipeline", [])
    sweeps = {name: study.sweep_entries(name, reuse_only=True) for name in ("fig4", "fig5") if name in pipeline}
    for es in sweeps.values():
        ids |= {e["run_id"] for e in es}
    study.require_records(ids)
    stamps = {w: study.stamp(w) for w in ("fig1", "table3")}
    md = analysis.write_report(study, out, entries, sweeps, stamps)
    md.update(analysis.write_run_facts(study, out, convergence=study.convergence_entries()))
    if request.readme:
        prefix = study.block_prefix()
        rep.update_readme(request.readme, {prefix + k: v for k, v in md.items()},
                          owns=lambda name: name.startswith(prefix) and "-" not in name[len(prefix):])
    study.log(f"report written to {out}" + (f"; README blocks updated in {request.readme}" if request.readme else ""))
    return None
