"""Fig. 1 statistics and table writers on hand-made cases."""

import json

import numpy as np
import pytest
import torch

from examples.kd.analysis import order_stats, sweep_figure, table1, timing_table


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


def test_table1_paired_differences(tmp_path):
    res = []
    for seed, (kd, aug, i, p) in enumerate([(70, 71, 73, 72), (72, 72, 75, 72)]):
        res += [dict(run_id=f"kd{seed}", method="kd", aug="none", seed=seed, best_acc=kd, violation=0.1),
                dict(run_id=f"a{seed}", method="kd-aug", aug="mixup", seed=seed, best_acc=aug, violation=0.9),
                dict(run_id=f"i{seed}", method="kd-i", aug="mixup", seed=seed, best_acc=i, violation=0.9),
                dict(run_id=f"p{seed}", method="kd-p", aug="mixup", seed=seed, best_acc=p, violation=0.9)]
    md = table1(res, tmp_path, augs=("mixup",))
    raw = {r["method"]: r for r in json.loads((tmp_path / "table1.json").read_text())}
    assert raw["kd-i"]["paired_diff"] == [2, 3] and raw["kd"]["paired_diff"] == [-1, 0]
    assert "2.50 ± 0.71" in md and (tmp_path / "table1.csv").exists()


def test_sweep_and_timing_tables(tmp_path):
    runs = [dict(best_acc=a, loss_cfg={"sigma": s}) for s, a in ((1, 50), (1, 52), (2, 55))]
    md = sweep_figure(runs, "sigma", tmp_path, "fig5", "sigma", "t")
    assert "51.00 ± 1.41" in md and (tmp_path / "fig5.png").exists()
    md = timing_table({"kd": [1.0, 1.0], "kd-aug": [1.01], "kd-i": [1.02], "kd-p": [1.0]}, {}, tmp_path)
    assert "KD-i / KD-aug = 1.010" in md
