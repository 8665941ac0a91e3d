"""Time one distillation training step with and without automatic mixed precision.

    python benchmarks/bench_kd_step.py --device cuda --out benchmarks/results/kd_step_cuda.json

The step is the KD example's own :func:`examples.kd.train.train_step` (teacher forward, student
forward and backward, the loss, the SGD update) for KD-aug and KD-i with Mixup, on the ``gpu``
profile's pair (ResNet-32x4 -> ResNet-8x4, 100 classes, 32x32 images, batch 128), in float32,
bfloat16 and float16 autocast (fp16 with a gradient scaler), each with and without
channels-last student and batches (the teacher as the training loop has it). The settings of one method are timed in turn (a, b, c, a, b, c, ...),
so a change of the machine's load affects them alike; each record is the median of
``--repeats`` steps after a warm-up, and its ``extra`` holds the ratio to float32 (the
reference of the family). ``--quick`` shrinks the models and the batch (a CPU smoke run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="small models and batch (CPU smoke run)")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from _record import Results, paired_times
    from examples.kd.losses import build_loss
    from examples.kd.models import build_model
    from examples.kd.train import make_optimizer, prepare_student, step_options, train_step

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device")
        return 0
    t_arch, s_arch, bs, c = ("resnet8", "resnet8", 16, 10) if args.quick else ("resnet32x4", "resnet8x4", 128, 100)
    res = Results(args.out, "kd_step", settings=dict(device=str(device), teacher=t_arch, student=s_arch,
                                                     batch_size=bs, classes=c, size=32, repeats=args.repeats))
    if device.type == "cuda":
        res.doc["machine"]["device"] = torch.cuda.get_device_name(device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(bs, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, c, (bs,), generator=g).to(device)
    torch.manual_seed(0)
    teacher = build_model(t_arch, c).to(device).eval()
    settings = [("off", False), ("off", True), ("bf16", False), ("bf16", True), ("fp16", False), ("fp16", True)]
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        settings = [s for s in settings if s[0] != "bf16"]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for method in ("kd-aug", "kd-i"):
        calls = []
        for amp, cl in settings:
            cfg = {"train": {"amp": amp, "channels_last": cl}, "optim": {"lr": 0.05}}
            torch.manual_seed(0)
            model = build_model(s_arch, c).to(device)
            net, kw = prepare_student(model, cfg), step_options(cfg, device)
            opt = make_optimizer(model, cfg)
            loss_fn = build_loss(method, {})
            rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)

            def call(net=net, opt=opt, loss_fn=loss_fn, rng=rng, gen=gen, kw=kw):
                train_step(net, opt, x, y, teacher, loss_fn, "mixup", 1.0, rng, gen, **kw)
                sync()
            calls.append(call)
        for _ in range(3):  # warm-up beyond paired_times' one call (cuDNN autotuning, the scaler)
            for fn in calls:
                fn()
        times = paired_times(calls, args.repeats)
        ref = times[0]
        for (amp, cl), t in zip(settings, times):
            impl = f"amp {amp}" + (", channels_last" if cl else "")
            res.add(f"kd step, {method}, mixup", bs, impl, t, ratio_to_float32=t / ref)
            print(f"{method:7s} {impl:24s} {1e3 * t:8.2f} ms  x{t / ref:.2f}", flush=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
