"""Fig. 1 statistics and table writers on hand-made cases."""

import json

import numpy as np
import torch

from examples.kd.analysis import order_stats, sweep_figure, table1, table1_selected, timing_table


def test_order_stats_hand_cases():
    z = torch.tensor([[3.0, 2.0, 1.0, 0.0],    # [0, 1]: all 5 known pairs concordant
                      [0.0, 1.0, 2.0, 3.0],    # [0, 1]: all discordant
                      [3.0, 2.0, 1.0, 0.0],    # [0, -1]: 3 pairs, concordant
                      [2.0, 3.0, 1.0, 0.0],    # [0, 1] at lam 0.5: pair (0, 1) unknown -> 4 pairs
                      [1.0, 3.0, 2.0, 0.0]])   # [0, 1]: (0,1) -, (0,2) -, (0,3) +, (1,2) +, (1,3) + -> 1/5
    labels = torch.tensor([[0, 1], [0, 1], [0, -1], [0, 1], [0, 1]])
    lam = torch.tensor([0.7, 0.7, 1.0, 0.5, 0.7])
    s = order_stats(z, labels, lam)
    np.testing.assert_allclose(s["tau"], [1.0, -1.0, 1.0, 1.0, 0.2])
    assert s["top2"].tolist() == [True, False, True, True, False]
    assert s["top2_any"].tolist() == [True, False, True, True, True]
    assert s["holds"].tolist() == [True, False, True, False, False]


def test_table1_paired_differences_and_control(tmp_path):
    ents = []
    accs = [(70, 71, 73, 72, 72), (72, 72, 75, 72, 74), (71, 70, 74, 73, 71)]  # kd, aug, i, raw, p per seed
    for seed, (kd, aug, i, raw, p) in enumerate(accs):
        ents += [dict(row="kd", aug="none", seed=seed, best_acc=kd, violation=0.1),
                 dict(row="kd-aug", aug="mixup", seed=seed, best_acc=aug, violation=0.9),
                 dict(row="kd-i", aug="mixup", seed=seed, best_acc=i, violation=0.9),
                 dict(row="kd-i-raw", aug="mixup", seed=seed, best_acc=raw, violation=0.9),
                 dict(row="kd-p", aug="mixup", seed=seed, best_acc=p, violation=0.9)]
    md = table1(ents, tmp_path, augs=("mixup",))
    raw = {r["row"]: r for r in json.loads((tmp_path / "table1.json").read_text())}
    assert raw["kd-i"]["paired_vs_kd_aug"][0]["diffs"] == [2, 3, 4]
    assert raw["kd"]["paired_vs_kd_aug"][0]["diffs"] == [-1, 0, 1]
    assert raw["kd-i"]["paired_vs_control"]["diffs"] == [1, 3, 1]
    # KD-i vs KD-aug: mean 3, sd 1, n 3 -> half width t_{0.975,2} / sqrt(3) = 4.3027 / 1.7321 = 2.48
    assert "| KD-i | Mixup | 3 | 74.00 ± 2.48 | +3.00 ± 2.48 | +1.67 ± 2.87 |" in md
    assert "| KD-i, raw teacher (control) | Mixup | 3 |" in md and "KD-i's Δ vs control" in md
    for ext in ("csv", "rst", "png"):
        assert (tmp_path / f"table1.{ext}").exists(), ext
    # without a control row there is no control column (a column of dashes) and no note about it
    md = table1([e for e in ents if e["row"] != "kd-i-raw"], tmp_path / "noctrl", augs=("mixup",))
    assert "| KD-i | Mixup | 3 | 74.00 ± 2.48 | +3.00 ± 2.48 | 90.0 |" in md
    assert "control" not in md


def test_table1_selected_reports_three_accuracies_and_the_student_alone(tmp_path):
    """The validation-selected accuracy (the differences use it), the last epoch and the best test
    epoch labelled as the paper's; the student alone (CE) is a row of its own."""
    ents = []
    for seed, (sel, last, best) in enumerate([(70, 71, 72), (72, 72, 73), (71, 73, 74)]):
        for row, aug, shift in (("ce", "none", -2), ("kd", "none", 0), ("kd-aug", "mixup", 1)):
            ents.append(dict(row=row, aug=aug, seed=seed, sel_acc=sel + shift, last_acc=last + shift,
                             best_acc=best + shift, violation=0.5))
    md, md_last = table1_selected(ents, tmp_path, ("mixup",))
    header = md.splitlines()[2]
    assert "val-selected epoch (%) | last epoch (%) | best test epoch, as the paper reports (%)" in header
    assert "| Student alone (CE) | — | 3 | 69.00 ± 2.48 | 70.00 ± 2.48 | 71.00 ± 2.48 | -3.00 ± 0.00 |" in md
    assert "| KD | — | 3 | 71.00 ± 2.48 | 72.00 ± 2.48 | 73.00 ± 2.48 | -1.00 ± 0.00 |" in md
    assert "KD's and CE's Δ" in md and "as the paper reports" in md
    assert "| KD | — | 3 | 72.00 ± 2.48 | -1.00 ± 0.00 |" in md_last and (tmp_path / "last" / "table1.csv").exists()
    assert (tmp_path / "table1.png").exists() and not (tmp_path / "last" / "table1.png").exists()


def test_sweep_and_timing_tables(tmp_path):
    ents = [dict(x=s, seed=k, sel_acc=a) for k, (s, a) in enumerate(((1, 50), (1, 52), (2, 55)))]
    md = sweep_figure(ents, tmp_path, "fig5", "sigma", "t")
    assert "| 1 | 2 | 51.00 ± 12.71 |" in md and "| 2 | 1 | 55.00 ± n/a |" in md and (tmp_path / "fig5.png").exists()
    times = {("kd", "none"): [1.0, 1.0], ("kd-aug", "mixup"): [1.01], ("kd-i", "mixup"): [1.02],
             ("kd-p", "mixup"): [1.0], ("kd-aug", "cutmix"): [2.0], ("kd-i", "cutmix"): [2.2]}
    md = timing_table(times, {("kd", "none"): 2.0, ("kd-i", "mixup"): 3.0}, tmp_path)
    assert "KD-i / KD-aug = 1.010 (Mixup), 1.100 (CutMix)" in md
    assert "| KD-i | Mixup | 1020.0 | 1.020 | 1.500 |" in md and "| KD-aug | CutMix | 2000.0 | 2.000 | — |" in md
