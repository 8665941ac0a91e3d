"""The study as a pipeline of steps (one command each): teacher, students, Fig. 1, Table 1,
Table 3, Fig. 4, Fig. 5. Completed runs are reused (``resume``), so each step trains only what
is missing; results are appended to ``<run_dir>/results.jsonl`` as they are produced.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from . import analysis
from .augment import mix_batch
from .data import load_data
from .losses import build_loss
from .models import build_model
from .train import RunSpec, dist_info, load_model, train_run

__all__ = ["Study"]


class Study:
    """Holds a config, the data and the teacher; each public method is one pipeline step."""

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
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
        self._barrier()
        self.resume = bool(cfg.get("resume", True))
        self.progress = bool(cfg.get("progress", True))
        t0 = time.perf_counter()
        self.data = load_data(dict(cfg.get("data", {})), self.root)
        self.log(f"device {self.device}, {torch.get_num_threads()} thread(s), world size {self.world}")
        self.log(f"data: {cfg['data'].get('name', 'glyphs')}, {self.data.num_classes} classes, "
                 f"{self.data.size('train')} train / {self.data.size('test')} test images "
                 f"({time.perf_counter() - t0:.1f}s)")
        self._teacher = None
        self._planned = False
        self.echo_tables = True
        self._logged = set()
        if self.rank == 0:
            (self.root / "config.json").write_text(json.dumps(cfg, indent=1))

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

    def results(self) -> list[dict]:
        p = self.root / "results.jsonl"
        if not p.exists():
            return []
        seen = {}
        for line in p.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                seen[r["run_id"]] = r
        return list(seen.values())

    def _record(self, result, tag=None):
        if result is None or self.rank != 0:
            return
        if tag:
            result = dict(result, tag=tag)
        if any(r == result for r in self.results()):  # a reused run: already recorded
            return
        with open(self.root / "results.jsonl", "a") as f:
            f.write(json.dumps(result) + "\n")

    def _run(self, spec, teacher=None, tag=None):
        res = train_run(spec, self.data, self.cfg, self.root, self.device, teacher=teacher,
                        resume=self.resume, progress=self.progress)
        self._record(res, tag)
        if res is not None and spec.run_id not in self._logged:
            self._logged.add(spec.run_id)
            self.log(f"{spec.run_id}: best {res['best_acc']:.2f}% last {res['last_acc']:.2f}%")
        return res

    def student_specs(self, seeds=None):
        cfg, specs = self.cfg, []
        for seed in seeds if seeds is not None else cfg.get("seeds", [0]):
            for m in cfg.get("methods", ["kd", "kd-aug", "kd-i", "kd-p"]):
                for aug in (["none"] if m == "kd" else cfg.get("augs", ["mixup", "cutmix"])):
                    specs.append(RunSpec(f"{m}_{aug}_s{seed}", cfg["student"]["arch"], m, aug, seed,
                                         cfg["student"]["epochs"], dict(cfg.get("loss", {}))))
        return specs

    def sweep_specs(self, name):
        cfg, a = self.cfg, self.cfg.get("analysis", {})
        aug = a.get("sweep_aug", "mixup")
        key, method, values = {"fig4": ("calibrated_fraction", "kd-i", a.get("fractions", [0, .5, 1])),
                               "fig5": ("sigma", "kd-p", a.get("sigmas", [0.5, 1, 2, 3, 4, 5]))}[name]
        specs, main = [], dict(cfg.get("loss", {}))
        for seed in cfg.get("seeds", [0]):
            for v in values:
                loss = dict(main, **{key: float(v)})
                # the point at the main setting is the Table 1 run itself (same id: trained once)
                rid = (f"{method}_{aug}_s{seed}" if float(main.get(key, -1)) == float(v)
                       else f"{name}_{key}{float(v):g}_{aug}_s{seed}")
                specs.append(RunSpec(rid, cfg["student"]["arch"], method, aug, seed,
                                     cfg["student"]["epochs"], loss))
        return specs

    # ------------------------------------------------------------------ time budget
    def _step_time(self, arch, method, aug, teacher_arch=None, steps=4):
        model = build_model(arch, self.data.num_classes).to(self.device)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        teacher = build_model(teacher_arch, self.data.num_classes).to(self.device).eval() if teacher_arch else None
        loss_fn = None if method == "teacher" else build_loss(method, self.cfg.get("loss", {}))
        bs = max(1, self.cfg["optim"].get("batch_size", 128) // self.world)
        gen, rng = torch.Generator().manual_seed(0), np.random.default_rng(0)
        idx = torch.arange(min(bs, self.data.size("train")))
        ts = []
        for i in range(steps + 2):
            t0 = time.perf_counter()
            _one_step(model, opt, teacher, loss_fn, self.data, idx, self.device, aug, rng, gen)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            ts.append(time.perf_counter() - t0)
        return float(np.median(ts[2:]))

    def plan(self, steps_wanted):
        """With ``time_budget`` (seconds), scale teacher/student epochs to fit; prints the plan."""
        budget = self.cfg.get("time_budget")
        if not budget or self._planned:
            return
        self._planned = True
        cfg = self.cfg
        n_steps = math.ceil(self.data.size("train") / self.world / max(1, cfg["optim"]["batch_size"] // self.world))
        extra = 1 + 0.4 * self.data.size("test") / max(1, self.data.size("train"))
        tt = self._step_time(cfg["teacher"]["arch"], "teacher", "none") * n_steps * extra
        ts = self._step_time(cfg["student"]["arch"], "kd-aug", "mixup", cfg["teacher"]["arch"]) * n_steps * extra
        n_students = 0
        if "students" in steps_wanted:
            n_students += len(self.student_specs())
        for s in ("fig4", "fig5"):
            if s in steps_wanted:
                n_students += len(self.sweep_specs(s))
        te, se = cfg["teacher"]["epochs"], cfg["student"]["epochs"]
        need = te * tt + n_students * se * ts
        f = min(1.0, 0.8 * float(budget) / max(need, 1e-9))
        te2, se2 = max(1, int(te * f)), max(1, int(se * f))
        cfg["teacher"]["epochs"], cfg["student"]["epochs"] = te2, se2
        self.log(f"time budget {budget:.0f}s: teacher epoch ~{tt:.1f}s, student epoch ~{ts:.1f}s, "
                 f"{n_students} student runs -> teacher {te2} epochs, students {se2} epochs "
                 f"(estimated {te2 * tt + n_students * se2 * ts:.0f}s of training)")

    # ------------------------------------------------------------------ steps
    def teacher(self):
        """Train (or load) the teacher; returns it in eval mode."""
        if self._teacher is None:
            t = self.cfg["teacher"]
            spec = RunSpec(f"teacher_{t['arch']}_s{t.get('seed', 0)}", t["arch"], "teacher", "none",
                           t.get("seed", 0), t["epochs"])
            res = self._run(spec)
            path = self.root / spec.run_id / "final.pt"
            self._teacher = load_model(path, t["arch"], self.data.num_classes, self.device)
            for p in self._teacher.parameters():
                p.requires_grad_(False)
            self.teacher_acc = res["best_acc"] if res else float("nan")
        return self._teacher

    def students(self, specs=None, tag=None):
        teacher = self.teacher()
        main = {s.run_id for s in self.student_specs()}
        return [self._run(s, teacher, None if s.run_id in main else tag)
                for s in (specs or self.student_specs())]

    def fig1(self):
        """Fig. 1a/1b: teacher order vs hard-label order on original, Mixup and CutMix samples."""
        teacher = self.teacher()
        if self.rank != 0:
            return ""
        n = min(self.cfg.get("analysis", {}).get("fig1_samples", 2000), self.data.size("train"))
        idx = torch.arange(n)
        stats = {}
        for kind in ("original", "mixup", "cutmix"):
            gen, rng = torch.Generator().manual_seed(123), np.random.default_rng(123)
            logits, labels, lams = [], [], []
            for i in range(0, n, 128):
                x, y = self.data.get("train", idx[i:i + 128], self.device)
                mb = mix_batch(x, y, "none" if kind == "original" else kind,
                               self.cfg.get("aug", {}).get("alpha", 1.0), rng, gen)
                with torch.no_grad():
                    logits.append(teacher(mb.x).float().cpu())
                labels.append(mb.labels.cpu())
                lams.append(mb.lam.cpu())
            stats[kind] = analysis.order_stats(torch.cat(logits), torch.cat(labels), torch.cat(lams))
        md = analysis.fig1_figure(stats, self.out)
        self.log(md, echo=self.echo_tables)
        return md

    def table1(self):
        self.students()
        if self.rank != 0:
            return ""
        res = self.results()
        md = analysis.table1(res, self.out, self.cfg.get("methods"), self.cfg.get("augs"))
        md_last = analysis.table1(res, self.out / "last", self.cfg.get("methods"), self.cfg.get("augs"),
                                  metric="last_acc")
        t = [r for r in res if r["method"] == "teacher"]
        head = f"Teacher {self.cfg['teacher']['arch']}: {t[0]['best_acc']:.2f}% " if t else ""
        head += f"-> student {self.cfg['student']['arch']}; best test accuracy, {len(self.cfg.get('seeds', [0]))} seed(s)\n\n"
        self.log(head + md + "\n" + md_last, echo=self.echo_tables)
        return head + md

    def sweep(self, name):
        self.students(self.sweep_specs(name), tag=name)
        if self.rank != 0:
            return ""
        key = "calibrated_fraction" if name == "fig4" else "sigma"
        title = ("Fig. 4: KD-i accuracy vs fraction of calibrated samples" if name == "fig4"
                 else "Fig. 5: KD-p accuracy vs sigma")
        aug = self.cfg.get("analysis", {}).get("sweep_aug", "mixup")
        method = "kd-i" if name == "fig4" else "kd-p"
        runs = [r for r in self.results() if r["method"] == method and r["aug"] == aug
                and r.get("tag") in (None, name) and key in r.get("loss_cfg", {})]
        md = analysis.sweep_figure(runs, key, self.out, name,
                                   "calibrated fraction" if name == "fig4" else "sigma", title)
        self.log(md, echo=self.echo_tables)
        return md

    def table3(self):
        """Table 3: interleaved step-time benchmark (median per method, ratio to KD)."""
        teacher = self.teacher()
        if self.rank != 0:
            return ""
        a = self.cfg.get("analysis", {})
        rounds, warm = int(a.get("timing_rounds", 30)), int(a.get("timing_warmup", 3))
        aug = a.get("timing_aug", "mixup")
        methods = [("kd", "none"), ("kd-aug", aug), ("kd-i", aug), ("kd-p", aug)]
        bs = self.cfg["optim"].get("batch_size", 128)
        models, opts, losses, gens = {}, {}, {}, {}
        for m, _ in methods:
            torch.manual_seed(0)
            models[m] = build_model(self.cfg["student"]["arch"], self.data.num_classes).to(self.device)
            opts[m] = torch.optim.SGD(models[m].parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
            losses[m] = build_loss(m, self.cfg.get("loss", {}))
            gens[m] = (torch.Generator().manual_seed(1), np.random.default_rng(1))
        times = {m: [] for m, _ in methods}
        n = self.data.size("train")
        for r in range(warm + rounds):
            idx = torch.arange((r * bs) % max(1, n - bs), (r * bs) % max(1, n - bs) + bs) % n
            order = methods[r % 4:] + methods[:r % 4]  # rotate so no method always runs first
            for m, ag in order:
                t0 = time.perf_counter()
                _one_step(models[m], opts[m], teacher, losses[m], self.data, idx, self.device, ag, gens[m][1],
                          gens[m][0])
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                if r >= warm:
                    times[m].append(time.perf_counter() - t0)
        train_med = {}
        for res in self.results():
            if res["method"] in times and not res.get("tag") and (res["aug"] in (aug, "none")):
                train_med.setdefault(res["method"], []).append(res["step_time_median"])
        train_med = {m: float(np.median(v)) for m, v in train_med.items()}
        md = analysis.timing_table(times, train_med, self.out)
        self.log(md, echo=self.echo_tables)
        return md


def _one_step(model, opt, teacher, loss_fn, data, idx, device, aug, rng, gen):
    model.train()
    x, y = data.get("train", idx, device, gen)
    if loss_fn is None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
    else:
        mb = mix_batch(x, y, aug, 1.0, rng, gen)
        with torch.no_grad():
            t = teacher(mb.x)
        loss, _ = loss_fn(model(mb.x), t, mb.y_a, mb.y_b, mb.lam, mb.labels, gen)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
