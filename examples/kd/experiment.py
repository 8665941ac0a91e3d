"""The study: the context its steps (:mod:`examples.kd.steps`) work in.

A :class:`Study` holds a checked configuration, its domain (:mod:`examples.kd.domain`: images
or text), the device, the data, the run store (:class:`examples.kd.runs.RunStore`) and the
teachers. It trains or reuses the runs a step asks for (which runs: the pure functions of
:mod:`examples.kd.plan`); records are appended to ``<run_dir>/results.jsonl`` as they are
produced, and every table is built only from the records of the current configuration (selected
by run id, :func:`examples.kd.runs.select_records`). ``reuse_only`` (the configuration's, or
the argument of :meth:`Study.teacher` and :meth:`Study.students`) never trains.

Fig. 1, Table 3, the sweeps and the report use the main pair; ``table1`` also writes the paper's
layout over every pair (:func:`examples.kd.tables.table1_pairs`). Students learn from the
teacher's selected epoch (``best.pt``: the best on the validation split), or from given weights
(``teacher.checkpoint``, evaluated, not trained).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch

from . import plan, runs
from .domain import ImageDomain
from .runs import RunStore
from .train import (RunOptions, RunSpec, Teacher, cpu_threads, dist_info, evaluate, has_validation, load_model,
                    run_identity, state_digest, train_run)

__all__ = ["Study", "ENTRY_KEYS"]

#: the fields of a run's record that Table 1's entries carry
ENTRY_KEYS = ("aug", "seed", "sel_acc", "sel_epoch", "last_acc", "best_acc", "violation", "run_id")


def _device(cfg: dict, distributed: bool) -> torch.device:
    dev = cfg.get("device", "auto")
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device; use --device cpu")
    if dev == "cuda" and distributed:
        dev = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    device = torch.device(dev)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def _set_threads(cfg: dict) -> None:
    threads = cfg.get("threads", 0)
    if threads == "auto":
        # On a shared machine, OpenMP threads beyond the idle cores stall each other (a
        # 2-thread step took 10x longer than a 1-thread step on 2 busy cores): use idle cores.
        idle = (os.cpu_count() or 1) - int(round(os.getloadavg()[0]))
        threads = max(1, min(idle, os.cpu_count() or 1, 8))
    if threads:
        torch.set_num_threads(int(threads))


class Study:
    """The configuration ``cfg`` (checked) of one study in ``domain`` (default images): its
    device, data, run store and teachers."""

    def __init__(self, cfg: dict, domain=None):
        self.cfg = cfg
        self.domain = domain or ImageDomain()
        self.domain.check(cfg)  # before anything is loaded or written
        self.rank, self.world, self.dist = dist_info()
        self.device = _device(cfg, self.dist)
        _set_threads(cfg)
        self.root = Path(cfg.get("run_dir", "runs/quick"))
        self.out = self.root / "analysis"
        self.resume = bool(cfg.get("resume", True))
        self.reuse_only = bool(cfg.get("reuse_only", False))
        self.progress = bool(cfg.get("progress", True))
        self.store = RunStore(self.root, self.rank, self.log)
        t0 = time.perf_counter()
        self.data = self.domain.load_data(cfg, self.root)  # checked before anything is written
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
        self._barrier()
        self._log_setup(time.perf_counter() - t0)
        self._teachers, self.teacher_digests, self.teacher_records = {}, {}, {}
        self._planned = False
        self.echo_tables = True
        self._logged = set()
        if self.rank == 0:
            (self.root / "config.json").write_text(json.dumps(cfg, indent=1))

    def _log_setup(self, seconds):
        self.log(f"device {self.device}, {torch.get_num_threads()} thread(s), world size {self.world}")
        val = f"{self.data.size('val')} validation / " if "val" in getattr(self.data, "splits", ()) else ""
        default = "glyphs" if self.domain.name == "image" else "debian"
        self.log(f"data: {self.cfg['data'].get('name', default)}, {self.data.num_classes} classes, "
                 f"{self.data.size('train')} train / {val}{self.data.size('test')} test examples ({seconds:.1f}s)")

    # ------------------------------------------------------------------ helpers
    def log(self, msg, echo=True):
        if self.rank == 0:
            if echo:
                print(msg, flush=True)
            with open(self.root / "study.log", "a") as f:
                f.write(time.strftime("%H:%M:%S ") + msg + "\n")

    def _barrier(self):
        if self.dist:
            torch.distributed.barrier()

    @property
    def results_path(self) -> Path:
        return self.store.results_path

    def _identity(self, spec, teacher_digest):
        return dict(run_identity(spec, self.cfg, self.data.identity, teacher_digest, self.world,
                                 cpu_threads(self.device)), **self.domain.extra_identity(self.cfg))

    def _reuse_only(self, reuse_only):
        return self.reuse_only if reuse_only is None else bool(reuse_only)

    def _run(self, spec, teacher=None, reuse_only=None):
        options = RunOptions(resume=self.resume, reuse_only=self._reuse_only(reuse_only), progress=self.progress,
                             log=self.log)
        rec = train_run(spec, self.data, self.cfg, self.store, self.device, teacher=teacher, domain=self.domain,
                        options=options)
        self.store.add(rec)
        if rec is not None and rec["run_id"] not in self._logged:
            self._logged.add(rec["run_id"])
            self.log(f"{rec['run_id']}: {rec['sel_acc']:.2f}% at the selected epoch {rec['sel_epoch']} "
                     f"(on {rec['selected_on']}), last {rec['last_acc']:.2f}%, best test {rec['best_acc']:.2f}%")
        return rec

    def run_id(self, spec) -> str:
        """The id a spec's run has under the current configuration (needs the teacher)."""
        self.teacher(spec.teacher_arch or None)
        td = None if spec.method in ("teacher", "ce") else self.teacher_digests[spec.teacher_arch or
                                                                                 self.cfg["teacher"]["arch"]]
        return runs.run_id(spec.name, self._identity(spec, td))

    def require_records(self, ids) -> None:
        """Raise when ``results.jsonl`` lacks a record of one of the runs ``ids``."""
        have = {r["run_id"] for r in runs.select_records(self.results_path, run_ids=ids)}
        missing = set(ids) - have
        if missing:
            raise RuntimeError(f"results.jsonl lacks the records of {sorted(missing)[:3]} "
                               f"(their result.json exist): run the study's steps again to record them")

    # ------------------------------------------------------------------ which runs (examples.kd.plan)
    @property
    def main_pair(self):
        return plan.main_pair(self.cfg)

    def pairs(self) -> list[tuple[str, str]]:
        return plan.pairs(self.cfg)

    def student_spec(self, row, method, aug, seed, loss, pair=None) -> RunSpec:
        return plan.student_spec(self.cfg, row, method, aug, seed, loss, pair)

    def student_rows(self, seeds=None, pair=None):
        return plan.student_rows(self.cfg, seeds, pair)

    def student_specs(self, seeds=None, pairs=None):
        return plan.student_specs(self.cfg, seeds, pairs)

    def sweep_specs(self, name):
        return plan.sweep_specs(self.cfg, name)

    # ------------------------------------------------------------------ time budget
    def plan(self, steps_wanted):
        """With ``time_budget`` (seconds), scale teacher/student epochs to fit; prints the plan."""
        from .timing import step_time

        budget = self.cfg.get("time_budget")
        if not budget or self._planned or self.reuse_only:
            return
        self._planned = True
        cfg = self.cfg
        n_steps = math.ceil(self.data.size("train") / self.world / max(1, cfg["optim"]["batch_size"] // self.world))
        evaluated = self.data.size("test") + (self.data.size("val") if has_validation(self.data) else 0)
        extra = 1 + 0.4 * evaluated / max(1, self.data.size("train"))
        tt = step_time(self, cfg["teacher"]["arch"], "teacher", "none") * n_steps * extra
        ts = step_time(self, cfg["student"]["arch"], "kd-aug", "mixup", cfg["teacher"]["arch"]) * n_steps * extra
        wanted = set()
        if "students" in steps_wanted or "table1" in steps_wanted:
            wanted |= {s.name for s in self.student_specs()}
        for s in ("fig4", "fig5"):
            if s in steps_wanted:
                wanted |= {sp.name for sp in self.sweep_specs(s)}
        n_students = len(wanted)
        te, se = cfg["teacher"]["epochs"], cfg["student"]["epochs"]
        f = min(1.0, 0.8 * float(budget) / max(te * tt + n_students * se * ts, 1e-9))
        te2, se2 = max(1, int(te * f)), max(1, int(se * f))
        cfg["teacher"]["epochs"], cfg["student"]["epochs"] = te2, se2
        self.log(f"time budget {budget:.0f}s: teacher epoch ~{tt:.1f}s, student epoch ~{ts:.1f}s, "
                 f"{n_students} student runs -> teacher {te2} epochs, students {se2} epochs "
                 f"(estimated {te2 * tt + n_students * se2 * ts:.0f}s of training)")

    # ------------------------------------------------------------------ teachers and students
    def teacher_spec(self, arch=None):
        return plan.teacher_spec(self.cfg, arch)

    def _given_teacher(self, spec, path):
        """``teacher.checkpoint``: the given weights, evaluated (top-1/top-5) and recorded."""
        model = load_model(path, spec.arch, self.data.num_classes, self.device, model_fn=self.domain.model_fn)
        top1, top5 = evaluate(model, self.data, self.device, top5=True)
        rec = dict(run_id=f"{spec.name}-given-{state_digest(model)}", name=spec.name, arch=spec.arch,
                   method="teacher", aug="none", seed=spec.seed, teacher_arch="", epochs=0, best_acc=top1,
                   best_acc5=top5, best_epoch=0, last_acc=top1, last_acc5=top5, sel_acc=top1, sel_acc5=top5,
                   sel_epoch=0, selected_on="given weights", checkpoint=str(path))
        self.store.add(rec)
        self.log(f"{spec.name}: given weights {path}: top-1 {top1:.2f}% top-5 {top5:.2f}%")
        return model, rec

    def teacher(self, arch=None, reuse_only=None):
        """Train (or load) the teacher ``arch`` (default ``teacher.arch``); returns it in eval mode.

        Students learn from the weights of the teacher's selected epoch (``best.pt``: the best on the
        validation split; the paper selects its teachers by best validation accuracy, which on
        CIFAR-100 is its test set). ``teacher.checkpoint`` (main teacher) gives weights instead:
        they are evaluated (top-1/top-5), recorded and not trained. ``reuse_only`` (default: the
        configuration's) never trains.
        """
        t = self.cfg["teacher"]
        arch = arch or t["arch"]
        if arch not in self._teachers:
            spec = self.teacher_spec(arch)
            if t.get("checkpoint") and arch == t["arch"]:
                model, rec = self._given_teacher(spec, t["checkpoint"])
            else:
                rec = self._run(spec, reuse_only=reuse_only)
                path = self.root / rec["run_id"] / "best.pt"
                model = load_model(path if path.exists() else path.with_name("final.pt"), arch,
                                   self.data.num_classes, self.device, model_fn=self.domain.model_fn)
            for p in model.parameters():
                p.requires_grad_(False)
            self.teacher_digests[arch] = state_digest(model)
            self._teachers[arch] = self.domain.prepare_teacher(self, model)
            self.teacher_records[arch] = rec
            if arch == t["arch"]:
                self.teacher_record, self.teacher_acc = rec, rec["sel_acc"]
        return self._teachers[arch]

    def teachers(self):
        """Train (or load) the teacher of every pair."""
        return [self.teacher(t) for t in dict.fromkeys(t for t, _ in self.pairs())]

    def students(self, specs=None, reuse_only=None):
        """Train (or reuse) student runs (default: every pair's Table 1 runs); returns their records.
        ``reuse_only`` (default: the configuration's) never trains."""
        done, out = {}, []
        for s in (specs if specs is not None else self.student_specs()):
            t_arch = s.teacher_arch or self.cfg["teacher"]["arch"]
            teacher = Teacher(self.teacher(t_arch, reuse_only), self.teacher_digests[t_arch])
            key = (s.name, runs.canonical(self._identity(s, teacher.digest)))
            if key not in done:
                done[key] = self._run(s, None if s.method == "ce" else teacher, reuse_only)
            out.append(done[key])
        return out

    # ------------------------------------------------------------------ what the tables read
    def stamp(self, what) -> dict:
        """What an analysis output depends on beyond the training runs (checked by ``report``)."""
        a, aug = self.cfg.get("analysis", {}), self.cfg.get("aug", {})
        s = dict(teacher=self.teacher_record["run_id"])
        if what == "fig1":
            s.update(samples=a.get("fig1_samples", 2000), aug_alpha=float(aug.get("alpha", 1.0)))
        if what == "table3":
            s.update(student=self.cfg["student"]["arch"], loss=self.cfg.get("loss", {}),
                     augs=list(self.cfg.get("augs", ["mixup", "cutmix"])), optim=self.cfg.get("optim", {}),
                     timing_augs=["mixup", "cutmix"], aug_alpha=float(aug.get("alpha", 1.0)),
                     rounds=a.get("timing_rounds", 30), warmup=a.get("timing_warmup", 3))
        return dict(digest=runs.config_digest(s), **s)

    def table1_entries(self, reuse_only=None):
        """The main pair's Table 1 records (training what is missing unless ``reuse_only``), as
        analysis entries."""
        rows = self.student_rows()
        recs = self.students([s for _, s in rows], reuse_only)
        return [dict(row=row, **{k: r[k] for k in ENTRY_KEYS}) for (row, _), r in zip(rows, recs)]

    def pair_records(self, pairs=None):
        """Records of Table 1's rows over ``pairs`` (default all; the KD-i control excluded)."""
        out = []
        for p in pairs or self.pairs():
            rows = [(r, s) for r, s in self.student_rows(pair=p) if r != "kd-i-raw"]
            out += self.students([s for _, s in rows])
        return out

    def sweep_entries(self, name, reuse_only=None):
        key = plan.SWEEPS[name][0]
        return [dict(x=float(r["loss_cfg"][key]), seed=r["seed"], sel_acc=r["sel_acc"], run_id=r["run_id"])
                for r in self.students(self.sweep_specs(name), reuse_only)]

    def convergence_entries(self, factor=3):
        """KD's best accuracy at the configured epochs and at ``factor`` x as many, per seed, for
        the seeds where both runs exist (never trains; train the longer runs with
        ``train --method kd --seed S student.epochs=N``)."""
        out = []
        loss = dict(self.cfg.get("loss", {}))
        for seed in self.cfg.get("seeds", [0]):
            short = self.student_spec("kd", "kd", "none", seed, loss)
            long = RunSpec(**dict(vars(short), epochs=short.epochs * factor))
            try:
                a, b = self.students([short, long], reuse_only=True)
            except runs.RunMissing:  # the longer run was not trained
                continue
            out.append(dict(seed=seed, short=a["sel_acc"], long=b["sel_acc"], epochs=(short.epochs, long.epochs)))
        return out

    # ------------------------------------------------------------------ the report's facts
    def settings_digest(self) -> str:
        """Digest of the configuration minus where and how verbosely it runs."""
        keep = {k: v for k, v in self.cfg.items() if k not in ("run_dir", "progress", "resume", "reuse_only")}
        keep["data"] = {k: v for k, v in keep.get("data", {}).items() if k != "cache_dir"}
        return runs.config_digest(keep)

    def record_wall_time(self, seconds, utc_start, load_start, load_end):
        runs.append_record(self.root / "timing.jsonl", dict(
            run_id=f"run-{utc_start}", settings=self.settings_digest(), seconds=round(float(seconds), 1),
            utc_start=utc_start, threads=torch.get_num_threads(), load_start=[round(x, 2) for x in load_start],
            load_end=[round(x, 2) for x in load_end], cpus=os.cpu_count()))

    def block_prefix(self) -> str:
        """The prefix of this profile's ``<!-- report:NAME -->`` blocks in a README: none for the
        default profile (``table1``), ``<profile>-`` for the others (``fmnist-table1``), so that
        one README quotes several reports (and the text study's ``text-*`` blocks) side by side."""
        profile = self.cfg.get("profile", "quick")
        return "" if profile == "quick" else f"{profile}-"
