"""The study as a pipeline of steps (one command each): teacher, students, Fig. 1, Table 1,
Table 2, Table 3, Fig. 4, Fig. 5 and the report. Completed runs of the same identity are reused
(``resume``), so each step trains only what is missing; records are appended to
``<run_dir>/results.jsonl`` as they are produced, and every table is built only from the records
of the current configuration (selected by run id, :func:`examples.kd.runs.select_records`).

Teacher/student pairs: ``pairs: [[teacher, student], ...]`` (default: the one pair
``teacher.arch -> student.arch``, the *main* pair). Students of the main pair keep the names
``<row>_<aug>_s<seed>``; other pairs' names start with ``<teacher>-<student>_``. Fig. 1, Table 3,
the sweeps and the report use the main pair; ``table1`` also writes the paper's layout over every
pair (:func:`examples.kd.tables.table1_pairs`). Students learn from the teacher's selected epoch
(``best.pt``: the best on the validation split), or from given weights (``teacher.checkpoint``,
evaluated, not trained).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from . import analysis, methods, runs, tables
from .augment import mix_batch
from .data import load_data
from .methods import build_loss
from .models import build_model
from .train import (RunSpec, cpu_threads, dist_info, evaluate, has_validation, load_model, make_optimizer,
                    prepare_student, run_identity, state_digest, step_options, train_run, train_step)

__all__ = ["Study", "ENTRY_KEYS"]

#: the fields of a run's record that Table 1's entries carry
ENTRY_KEYS = ("aug", "seed", "sel_acc", "sel_epoch", "last_acc", "best_acc", "violation", "run_id")


class Study:
    """Holds a config, the data and the teacher; each public method is one pipeline step.

    A second study (the text study, :mod:`examples.kd.text`) subclasses it and replaces the
    data-dependent parts: :meth:`_load_data`, :attr:`model_fn`, :attr:`batch_loss`,
    :meth:`_prepare_teacher` and :meth:`extra_identity`.
    """

    model_fn = staticmethod(build_model)  # (arch, num_classes) -> network
    batch_loss = None                     # a batch's (loss, stats); None: train.image_loss

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.rank, self.world, self.dist = dist_info()
        dev = cfg.get("device", "auto")
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        if dev.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but torch sees no CUDA device; use --device cpu")
        if dev == "cuda" and self.dist:
            import os

            dev = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        self.device = torch.device(dev)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        threads = cfg.get("threads", 0)
        if threads == "auto":
            # On a shared machine, OpenMP threads beyond the idle cores stall each other (a
            # 2-thread step took 10x longer than a 1-thread step on 2 busy cores): use idle cores.
            import os

            idle = (os.cpu_count() or 1) - int(round(os.getloadavg()[0]))
            threads = max(1, min(idle, os.cpu_count() or 1, 8))
        if threads:
            torch.set_num_threads(int(threads))
        self.root = Path(cfg.get("run_dir", "runs/quick"))
        self.out = self.root / "analysis"
        self.resume = bool(cfg.get("resume", True))
        self.reuse_only = bool(cfg.get("reuse_only", False))
        self.progress = bool(cfg.get("progress", True))
        t0 = time.perf_counter()
        self.data = self._load_data()  # checked before anything is written
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
        self._barrier()
        self.log(f"device {self.device}, {torch.get_num_threads()} thread(s), world size {self.world}")
        val = f"{self.data.size('val')} validation / " if "val" in getattr(self.data, "splits", ()) else ""
        self.log(f"data: {cfg['data'].get('name', 'glyphs')}, {self.data.num_classes} classes, "
                 f"{self.data.size('train')} train / {val}{self.data.size('test')} test examples "
                 f"({time.perf_counter() - t0:.1f}s)")
        self._teacher = None
        self.teacher_digest = None
        self._teachers, self.teacher_digests, self.teacher_records = {}, {}, {}
        self._planned = False
        self.echo_tables = True
        self._logged = set()
        if self.rank == 0:
            (self.root / "config.json").write_text(json.dumps(cfg, indent=1))

    # ------------------------------------------------------------------ hooks
    def _load_data(self):
        return load_data(dict(self.cfg.get("data", {})), self.root)

    def _prepare_teacher(self, model):
        """The trained teacher (eval mode, frozen) as the students' ``batch_loss`` uses it."""
        return model

    def extra_identity(self) -> dict:
        """Settings beyond :func:`~examples.kd.train.run_identity` that decide a run's result."""
        return {}

    def _identity(self, spec, teacher_digest):
        return dict(run_identity(spec, self.cfg, self.data.identity, teacher_digest, self.world,
                                 cpu_threads(self.device)), **self.extra_identity())

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
        return self.root / "results.jsonl"

    def _record(self, rec):
        if rec is None or self.rank != 0:
            return
        if any(r["run_id"] == rec["run_id"] for r in runs.read_records(self.results_path)):
            return  # a reused run: already recorded
        runs.append_record(self.results_path, rec)

    def _run(self, spec, teacher=None):
        digest = self.teacher_digests.get(spec.teacher_arch or self.cfg["teacher"]["arch"])
        rec = train_run(spec, self.data, self.cfg, self.root, self.device, teacher=teacher,
                        teacher_digest=digest if teacher is not None else None,
                        resume=self.resume, reuse_only=self.reuse_only, progress=self.progress, log=self.log,
                        model_fn=self.model_fn, batch_loss=self.batch_loss, extra_identity=self.extra_identity())
        self._record(rec)
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

    # ------------------------------------------------------------------ which runs
    @property
    def main_pair(self):
        return self.cfg["teacher"]["arch"], self.cfg["student"]["arch"]

    def pairs(self) -> list[tuple[str, str]]:
        """The teacher/student pairs of Table 1 (``pairs``, default the main pair)."""
        return [(str(t), str(s)) for t, s in (self.cfg.get("pairs") or [list(self.main_pair)])]

    def _student(self, row, method, aug, seed, loss, pair=None):
        t, s = pair or self.main_pair
        # the student alone (ce) does not depend on the teacher: one run per student serves every pair
        prefix = "" if (t, s) == self.main_pair or method == "ce" else f"{t}-{s}_"
        if method == "ce" and (t, s) != self.main_pair:
            prefix = f"{s}_" if s != self.main_pair[1] else ""
        return RunSpec(f"{prefix}{row}_{aug}_s{seed}", s, method, aug, seed, self.cfg["student"]["epochs"], loss, t)

    def student_rows(self, seeds=None, pair=None):
        """Table 1's runs of one pair (default the main pair) as ``(row, spec)``, in the order of
        ``methods``: each method once (``none``) or for each augmentation, and after a method with
        a control row (KD-i: its extra beta-weighted term against the raw teacher,
        ``calibrated_fraction = 0``; main pair only) that row too."""
        cfg, out = self.cfg, []
        pair = tuple(pair or self.main_pair)
        main = dict(cfg.get("loss", {}))
        control = cfg.get("analysis", {}).get("control", True) and pair == self.main_pair
        for seed in seeds if seeds is not None else cfg.get("seeds", [0]):
            for m in cfg.get("methods", ["kd", "kd-aug", "kd-i", "kd-p"]):
                method = methods.get(m)
                for aug in (cfg.get("augs", list(methods.MIXES)) if method.mixes else ["none"]):
                    out.append((m, self._student(methods.row_name(m, main, main), m, aug, seed, main, pair)))
                    if control and method.control is not None:
                        row, _, settings = method.control
                        if any(methods.loss_params(m, main)[k] != v for k, v in settings.items()):
                            out.append((row, self._student(row, m, aug, seed, dict(main, **settings), pair)))
        return out

    def student_specs(self, seeds=None, pairs=None):
        """Every pair's Table 1 runs (``pairs`` default: all pairs)."""
        return [s for p in (pairs or self.pairs()) for _, s in self.student_rows(seeds, p)]

    def sweep_specs(self, name):
        """Fig. 4 (KD-i, calibrated fraction) or Fig. 5 (KD-p, sigma) runs over the seeds
        ``analysis.sweep_seeds`` (default: ``seeds``); the points at the main setting (and fraction
        0, the control) are Table 1's runs (same identity, same id)."""
        cfg, a = self.cfg, self.cfg.get("analysis", {})
        aug = a.get("sweep_aug", "mixup")
        key, method, values = {"fig4": ("calibrated_fraction", "kd-i", a.get("fractions", [0, .5, 1])),
                               "fig5": ("sigma", "kd-p", a.get("sigmas", [0.5, 1, 2, 3, 4, 5]))}[name]
        specs, main = [], dict(cfg.get("loss", {}))
        for seed in a.get("sweep_seeds") or cfg.get("seeds", [0]):
            for v in values:
                loss = dict(main, **{key: float(v)})
                specs.append(self._student(methods.row_name(method, loss, main), method, aug, seed, loss))
        return specs

    # ------------------------------------------------------------------ time budget
    def _step_time(self, arch, method, aug, teacher_arch=None, steps=4):
        model = build_model(arch, self.data.num_classes).to(self.device)
        net, kw = prepare_student(model, self.cfg), step_options(self.cfg, self.device)
        opt = make_optimizer(model, self.cfg)
        teacher = build_model(teacher_arch, self.data.num_classes).to(self.device).eval() if teacher_arch else None
        loss_fn = None if method == "teacher" else build_loss(method, self.cfg.get("loss", {}))
        bs = max(1, self.cfg["optim"].get("batch_size", 128) // self.world)
        gen, rng = torch.Generator().manual_seed(0), np.random.default_rng(0)
        idx = torch.arange(min(bs, self.data.size("train")))
        alpha = float(self.cfg.get("aug", {}).get("alpha", 1.0))
        ts = []
        for i in range(steps + 2):
            t0 = time.perf_counter()
            x, y = self.data.get("train", idx, self.device, gen)
            train_step(net, opt, x, y, teacher, loss_fn, aug, alpha, rng, gen, **kw)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            ts.append(time.perf_counter() - t0)
        return float(np.median(ts[2:]))

    def plan(self, steps_wanted):
        """With ``time_budget`` (seconds), scale teacher/student epochs to fit; prints the plan."""
        budget = self.cfg.get("time_budget")
        if not budget or self._planned or self.reuse_only:
            return
        self._planned = True
        cfg = self.cfg
        n_steps = math.ceil(self.data.size("train") / self.world / max(1, cfg["optim"]["batch_size"] // self.world))
        evaluated = self.data.size("test") + (self.data.size("val") if has_validation(self.data) else 0)
        extra = 1 + 0.4 * evaluated / max(1, self.data.size("train"))
        tt = self._step_time(cfg["teacher"]["arch"], "teacher", "none") * n_steps * extra
        ts = self._step_time(cfg["student"]["arch"], "kd-aug", "mixup", cfg["teacher"]["arch"]) * n_steps * extra
        wanted = set()
        if "students" in steps_wanted or "table1" in steps_wanted:
            wanted |= {s.name for s in self.student_specs()}
        for s in ("fig4", "fig5"):
            if s in steps_wanted:
                wanted |= {sp.name for sp in self.sweep_specs(s)}
        n_students = len(wanted)
        te, se = cfg["teacher"]["epochs"], cfg["student"]["epochs"]
        need = te * tt + n_students * se * ts
        f = min(1.0, 0.8 * float(budget) / max(need, 1e-9))
        te2, se2 = max(1, int(te * f)), max(1, int(se * f))
        cfg["teacher"]["epochs"], cfg["student"]["epochs"] = te2, se2
        self.log(f"time budget {budget:.0f}s: teacher epoch ~{tt:.1f}s, student epoch ~{ts:.1f}s, "
                 f"{n_students} student runs -> teacher {te2} epochs, students {se2} epochs "
                 f"(estimated {te2 * tt + n_students * se2 * ts:.0f}s of training)")

    # ------------------------------------------------------------------ steps
    def teacher_spec(self, arch=None):
        t = self.cfg["teacher"]
        arch = arch or t["arch"]
        return RunSpec(f"teacher_{arch}_s{t.get('seed', 0)}", arch, "teacher", "none", t.get("seed", 0), t["epochs"])

    def teacher(self, arch=None):
        """Train (or load) the teacher ``arch`` (default ``teacher.arch``); returns it in eval mode.

        Students learn from the weights of the teacher's selected epoch (``best.pt``: the best on the
        validation split; the paper selects its teachers by best validation accuracy, which on
        CIFAR-100 is its test set). ``teacher.checkpoint`` (main teacher)
        gives weights instead: they are evaluated (top-1/top-5), recorded and not trained.
        """
        t = self.cfg["teacher"]
        arch = arch or t["arch"]
        if arch not in self._teachers:
            spec = self.teacher_spec(arch)
            if t.get("checkpoint") and arch == t["arch"]:
                model = load_model(t["checkpoint"], arch, self.data.num_classes, self.device, model_fn=self.model_fn)
                top1, top5 = evaluate(model, self.data, self.device, top5=True)
                digest = state_digest(model)
                rec = dict(run_id=f"{spec.name}-given-{digest}", name=spec.name, arch=arch, method="teacher",
                           aug="none", seed=spec.seed, teacher_arch="", epochs=0, best_acc=top1, best_acc5=top5,
                           best_epoch=0, last_acc=top1, last_acc5=top5, sel_acc=top1, sel_acc5=top5, sel_epoch=0,
                           selected_on="given weights", checkpoint=str(t["checkpoint"]))
                self._record(rec)
                self.log(f"{spec.name}: given weights {t['checkpoint']}: top-1 {top1:.2f}% top-5 {top5:.2f}%")
            else:
                rec = self._run(spec)
                path = self.root / rec["run_id"] / "best.pt"
                model = load_model(path if path.exists() else path.with_name("final.pt"), arch,
                                   self.data.num_classes, self.device, model_fn=self.model_fn)
            for p in model.parameters():
                p.requires_grad_(False)
            self.teacher_digests[arch] = state_digest(model)
            self._teachers[arch] = self._prepare_teacher(model)
            self.teacher_records[arch] = rec
            if arch == t["arch"]:
                self._teacher, self.teacher_digest = self._teachers[arch], self.teacher_digests[arch]
                self.teacher_record, self.teacher_acc = rec, rec["sel_acc"]
        return self._teachers[arch]

    def teachers(self):
        """Train (or load) the teacher of every pair."""
        return [self.teacher(t) for t in dict.fromkeys(t for t, _ in self.pairs())]

    def students(self, specs=None):
        """Train (or reuse) student runs; returns their records."""
        done, out = {}, []
        for s in (specs if specs is not None else self.student_specs()):
            t_arch = s.teacher_arch or self.cfg["teacher"]["arch"]
            teacher = self.teacher(t_arch)
            key = (s.name, runs.canonical(self._identity(s, self.teacher_digests[t_arch])))
            if key not in done:
                done[key] = self._run(s, None if s.method == "ce" else teacher)
            out.append(done[key])
        return out

    #: the kinds of sample Fig. 1 compares (a study on other data names its own)
    FIG1_KINDS = ("original", "mixup", "cutmix")

    def _fig1_batch(self, teacher, idx, kind, alpha, rng, gen):
        """Teacher logits, label order and lambda of one batch of Fig. 1's ``kind`` of sample."""
        x, y = self.data.get("train", idx, self.device)
        mb = mix_batch(x, y, "none" if kind == "original" else kind, alpha, rng, gen)
        with torch.no_grad():
            return teacher(mb.x), mb.labels, mb.lam

    def fig1(self):
        """Fig. 1a/1b: teacher order vs hard-label order on original and mixed samples."""
        teacher = self.teacher()
        if self.rank != 0:
            return ""
        n = min(self.cfg.get("analysis", {}).get("fig1_samples", 2000), self.data.size("train"))
        idx = torch.arange(n)
        alpha = self.cfg.get("aug", {}).get("alpha", 1.0)
        stats = {}
        for kind in self.FIG1_KINDS:
            gen, rng = torch.Generator().manual_seed(123), np.random.default_rng(123)
            logits, labels, lams = [], [], []
            for i in range(0, n, 128):
                lg, lb, lm = self._fig1_batch(teacher, idx[i:i + 128], kind, alpha, rng, gen)
                logits.append(lg.float().cpu())
                labels.append(lb.cpu())
                lams.append(lm.cpu())
            stats[kind] = analysis.order_stats(torch.cat(logits), torch.cat(labels), torch.cat(lams))
        md = analysis.fig1_figure(stats, self.out, stamp=self._stamp("fig1"))
        self.log(md, echo=self.echo_tables)
        return md

    def _stamp(self, what) -> dict:
        """What an analysis output depends on beyond the training runs (checked by ``report``)."""
        a = self.cfg.get("analysis", {})
        s = dict(teacher=self.teacher_record["run_id"])
        if what == "fig1":
            s.update(samples=a.get("fig1_samples", 2000), aug_alpha=float(self.cfg.get("aug", {}).get("alpha", 1.0)))
        if what == "table3":
            s.update(student=self.cfg["student"]["arch"], loss=self.cfg.get("loss", {}),
                     augs=list(self.cfg.get("augs", ["mixup", "cutmix"])), optim=self.cfg.get("optim", {}),
                     timing_augs=["mixup", "cutmix"],
                     aug_alpha=float(self.cfg.get("aug", {}).get("alpha", 1.0)),
                     rounds=a.get("timing_rounds", 30), warmup=a.get("timing_warmup", 3))
        return dict(digest=runs.config_digest(s), **s)

    def table1_entries(self):
        """The main pair's Table 1 records (training what is missing unless ``reuse_only``), as
        analysis entries."""
        rows = self.student_rows()
        recs = self.students([s for _, s in rows])
        return [dict(row=row, **{k: r[k] for k in ENTRY_KEYS}) for (row, _), r in zip(rows, recs)]

    def pair_records(self, pairs=None):
        """Records of Table 1's rows over ``pairs`` (default all; the KD-i control excluded)."""
        out = []
        for p in pairs or self.pairs():
            rows = [(r, s) for r, s in self.student_rows(pair=p) if r != "kd-i-raw"]
            out += self.students([s for _, s in rows])
        return out

    def table1(self):
        """Table 1: the paper's layout over all pairs (``table1_pairs.*``: Teacher, Student, KD,
        KD-aug/KD-i/KD-p, CRD, CRD-aug/CRD-i/CRD-p), then the main pair's KD family with paired
        differences (``table1.*``)."""
        self.teachers()
        recs = self.pair_records()
        entries = self.table1_entries()
        if self.rank != 0:
            return ""
        augs = self.cfg.get("augs", ["mixup", "cutmix"])
        methods = self.cfg.get("methods", ["kd", "kd-aug", "kd-i", "kd-p"])
        t_acc = {a: r["sel_acc"] for a, r in self.teacher_records.items()}
        md_pairs = tables.table1_pairs(recs, self.pairs(), methods, augs, t_acc, self.out)
        if "ce" not in methods:
            md_pairs += "\n(Student row: add `ce` to `methods` to train the student alone.)\n"
        md, md_last = analysis.table1_selected(entries, self.out, augs)
        head = (f"Teacher {self.cfg['teacher']['arch']}: {self.teacher_acc:.2f}% (test accuracy of the selected "
                f"epoch, the checkpoint students learn from) -> student {self.cfg['student']['arch']} "
                f"({self.cfg['student']['epochs']} epochs); {len(self.cfg.get('seeds', [0]))} seed(s)\n\n")
        self.log(md_pairs + "\n" + head + md + "\n" + md_last, echo=self.echo_tables)
        return md_pairs + "\n" + head + md

    def table2(self):
        """Table 2 (ImageNet): top-1 / top-5 of the main pair's teacher, student and KD family."""
        self.teacher()
        recs = self.pair_records([self.main_pair])
        if self.rank != 0:
            return ""
        md = tables.table2(recs, self.main_pair, self.cfg.get("methods"), self.cfg.get("augs"),
                           self.teacher_record, self.out)
        self.log(md, echo=self.echo_tables)
        return md

    def sweep_entries(self, name):
        key = "calibrated_fraction" if name == "fig4" else "sigma"
        specs = self.sweep_specs(name)
        return [dict(x=float(r["loss_cfg"][key]), seed=r["seed"], sel_acc=r["sel_acc"], run_id=r["run_id"])
                for r in self.students(specs)]

    def sweep(self, name):
        entries = self.sweep_entries(name)
        if self.rank != 0:
            return ""
        aug = self.cfg.get("analysis", {}).get("sweep_aug", "mixup")
        aug_label = {"mixup": "Mixup", "cutmix": "CutMix"}[aug]
        if name == "fig4":
            title, xlabel = f"Fig. 4: KD-i ({aug_label}) accuracy\nvs fraction of calibrated samples", \
                "calibrated fraction"
        else:
            title, xlabel = f"Fig. 5: KD-p ({aug_label}) accuracy vs sigma", "sigma"
        md = analysis.sweep_figure(entries, self.out, name, xlabel, title)
        self.log(md, echo=self.echo_tables)
        return md

    def table3(self):
        """Table 3: interleaved step-time benchmark of every (method, augmentation) of Table 1,
        each a call of the training loop's own :func:`~examples.kd.train.train_step`."""
        teacher = self.teacher()
        if self.rank != 0:
            return ""
        a = self.cfg.get("analysis", {})
        rounds, warm = int(a.get("timing_rounds", 30)), int(a.get("timing_warmup", 3))
        combos = ([(m, "none") for m in methods.names("kd", mixes=False)]
                  + [(m, ag) for ag in methods.MIXES for m in methods.names("kd", mixes=True)])
        bs = self.cfg["optim"].get("batch_size", 128)
        alpha = float(self.cfg.get("aug", {}).get("alpha", 1.0))
        models, opts, losses, gens, kws = {}, {}, {}, {}, {}
        for c in combos:
            torch.manual_seed(0)
            model = build_model(self.cfg["student"]["arch"], self.data.num_classes).to(self.device)
            models[c], kws[c] = prepare_student(model, self.cfg), step_options(self.cfg, self.device)
            opts[c] = make_optimizer(model, self.cfg)
            losses[c] = build_loss(c[0], self.cfg.get("loss", {}))
            gens[c] = (torch.Generator().manual_seed(1), np.random.default_rng(1))
        times = {c: [] for c in combos}
        n = self.data.size("train")
        k = len(combos)
        for r in range(warm + rounds):
            idx = torch.arange((r * bs) % max(1, n - bs), (r * bs) % max(1, n - bs) + bs) % n
            order = combos[r % k:] + combos[:r % k]  # rotate so no combination always runs first
            for c in order:
                g, rng = gens[c]
                t0 = time.perf_counter()
                x, y = self.data.get("train", idx, self.device, g)
                train_step(models[c], opts[c], x, y, teacher, losses[c], c[1], alpha, rng, g, **kws[c])
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                if r >= warm:
                    times[c].append(time.perf_counter() - t0)
        train_med = {}
        for e in self.table1_entries():
            if e["row"] in methods.names("kd"):
                rec = next(r for r in runs.read_records(self.results_path) if r["run_id"] == e["run_id"])
                train_med.setdefault((e["row"], e["aug"]), []).append(rec["step_time_median"])
        train_med = {c: float(np.median(v)) for c, v in train_med.items()}
        md = analysis.timing_table(times, train_med, self.out, stamp=self._stamp("table3"))
        self.log(md, echo=self.echo_tables)
        return md

    # ------------------------------------------------------------------ report
    def settings_digest(self) -> str:
        """Digest of the configuration minus where and how verbosely it runs."""
        keep = {k: v for k, v in self.cfg.items() if k not in ("run_dir", "progress", "resume", "reuse_only")}
        keep["data"] = {k: v for k, v in keep.get("data", {}).items() if k != "cache_dir"}
        return runs.config_digest(keep)

    def record_wall_time(self, seconds, utc_start, load_start, load_end):
        runs.append_record(self.root / "timing.jsonl", dict(
            run_id=f"run-{utc_start}", settings=self.settings_digest(), seconds=round(float(seconds), 1),
            utc_start=utc_start, threads=torch.get_num_threads(), load_start=[round(x, 2) for x in load_start],
            load_end=[round(x, 2) for x in load_end], cpus=__import__("os").cpu_count()))

    def convergence_entries(self, factor=3):
        """KD's best accuracy at the configured epochs and at ``factor`` x as many, per seed, for
        the seeds where both runs exist (never trains; train the longer runs with
        ``train --method kd --seed S student.epochs=N``)."""
        saved = self.reuse_only
        self.reuse_only = True
        out = []
        try:
            loss = dict(self.cfg.get("loss", {}))
            for seed in self.cfg.get("seeds", [0]):
                short = self._student("kd", "kd", "none", seed, loss)
                long = RunSpec(**dict(vars(short), epochs=short.epochs * factor))
                try:
                    a, b = self.students([short, long])
                except Exception as e:  # RunMissing: the longer run was not trained
                    if type(e).__name__ != "RunMissing":
                        raise
                    continue
                out.append(dict(seed=seed, short=a["sel_acc"], long=b["sel_acc"], epochs=(short.epochs, long.epochs)))
        finally:
            self.reuse_only = saved
        return out

    def block_prefix(self) -> str:
        """The prefix of this profile's ``<!-- report:NAME -->`` blocks in a README: none for the
        default profile (``table1``), ``<profile>-`` for the others (``fmnist-table1``), so that
        one README quotes several reports (and the text study's ``text-*`` blocks) side by side."""
        profile = self.cfg.get("profile", "quick")
        return "" if profile == "quick" else f"{profile}-"

    def report(self, out_dir=None, readme=None):
        """Write the generated report (tables .md/.rst/.csv, figures) from the current runs.

        Never trains: every run must exist with the current settings (otherwise
        :class:`~examples.kd.train.RunMissing` names what differs). Fig. 1 and Table 3 are read from
        ``analysis/`` and must carry the current teacher and settings.
        """
        from . import report as rep

        if self.rank != 0:
            return ""
        saved = self.reuse_only
        self.reuse_only = True
        try:
            self.teacher()
            out = Path(out_dir) if out_dir else self.root / "report"
            ids = {e["run_id"] for e in self.table1_entries()}
            pipeline = self.cfg.get("pipeline", [])
            sweeps = {name: self.sweep_entries(name) for name in ("fig4", "fig5") if name in pipeline}
            for es in sweeps.values():
                ids |= {e["run_id"] for e in es}
        finally:
            self.reuse_only = saved
        recs = {r["run_id"]: r for r in runs.select_records(self.results_path, run_ids=ids)}
        missing = ids - set(recs)
        if missing:
            raise RuntimeError(f"results.jsonl lacks the records of {sorted(missing)[:3]} "
                               f"(their result.json exist): run the study's steps again to record them")
        stamps = {w: self._stamp(w) for w in ("fig1", "table3")}
        md = analysis.write_report(self, out, sweeps, stamps)
        md.update(analysis.write_run_facts(self, out))
        if readme:
            prefix = self.block_prefix()
            rep.update_readme(readme, {prefix + k: v for k, v in md.items()},
                              owns=lambda name: name.startswith(prefix) and "-" not in name[len(prefix):])
        self.log(f"report written to {out}" + (f"; README blocks updated in {readme}" if readme else ""))
        return md.get("table1", "")
