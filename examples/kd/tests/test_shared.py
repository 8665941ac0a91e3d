"""The data-independent modules shared with the text study: run identity and records
(runs.py), schema validation (schema.py) and report writing (report.py)."""

import json
import math

import pytest

from examples.kd import report, runs, schema
from examples.kd.schema import (AnyOf, Bool, Choice, ConfigError, Float, Int, ListOf, Section,
                                parse_int_list, validate)


# ----------------------------------------------------------------------------- runs.py
def test_digest_is_order_free_and_value_sensitive():
    a = {"loss": {"tau": 4.5, "alpha": 0.95}, "seed": 0}
    b = {"seed": 0, "loss": {"alpha": 0.95, "tau": 4.5}}
    assert runs.config_digest(a) == runs.config_digest(b)
    for changed in ({"loss": {"tau": 4.0, "alpha": 0.95}, "seed": 0}, {"loss": {"tau": 4.5, "alpha": 0.95}, "seed": 1},
                    {"loss": {"tau": 4.5, "alpha": 0.95}, "seed": 0, "extra": None}):
        assert runs.config_digest(changed) != runs.config_digest(a)
    assert runs.run_id("kd_none_s0", a) == "kd_none_s0-" + runs.config_digest(a)
    assert len(runs.config_digest(a)) == 10


@pytest.mark.parametrize("bad", [{"x": float("nan")}, {"x": object()}])
def test_digest_rejects_non_json(bad):
    with pytest.raises((ValueError, TypeError)):
        runs.config_digest(bad)


def test_run_id_rejects_paths():
    with pytest.raises(ValueError, match="folder name"):
        runs.run_id("a/b", {})


def test_file_digest_content(tmp_path):
    f = tmp_path / "d.bin"
    f.write_bytes(b"abc")
    d1 = runs.file_digest(f)
    g = tmp_path / "e.bin"
    g.write_bytes(b"abc")
    assert runs.file_digest(g) == d1           # content, not the name
    f.write_bytes(b"abd")
    assert runs.file_digest(f) != d1
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "x").write_bytes(b"1")
    d2 = runs.file_digest(folder)
    (folder / "y").write_bytes(b"2")
    assert runs.file_digest(folder) != d2
    with pytest.raises(FileNotFoundError):
        runs.file_digest(tmp_path / "missing")


def test_diff_identity_names_keys():
    a = {"data": {"digest": "aa", "seed": 0}, "loss": {"tau": 4.5}}
    b = {"data": {"digest": "bb", "seed": 0}, "loss": {"tau": 4.5}, "optim": {"lr": 0.1}}
    assert runs.diff_identity(a, b) == ["data.digest: aa -> bb", "optim.lr: (absent) -> 0.1"]
    assert runs.diff_identity(a, a) == []


def test_records_select_by_run_and_field(tmp_path):
    p = tmp_path / "results.jsonl"
    r1 = runs.make_record("kd_s0", {"method": "kd", "seed": 0, "loss": {"tau": 4.5}}, {"best_acc": 50.0})
    r2 = runs.make_record("kd_s0", {"method": "kd", "seed": 0, "loss": {"tau": 2.0}}, {"best_acc": 40.0})
    r1b = dict(r1, best_acc=51.0)  # the same run written again: the last record wins
    for r in (r1, r2, r1b):
        runs.append_record(p, r)
    assert r1["run_id"] != r2["run_id"] and r1["digest"] in r1["run_id"]
    allr = runs.read_records(p)
    assert [r["best_acc"] for r in allr] == [40.0, 51.0]
    assert [r["best_acc"] for r in runs.select_records(p, run_ids=[r1["run_id"]])] == [51.0]
    assert [r["best_acc"] for r in runs.select_records(p, loss__tau=2.0)] == [40.0]
    assert runs.select_records(p, run_ids=[]) == [] and runs.select_records(tmp_path / "none.jsonl") == []
    with pytest.raises(ValueError, match="reserved"):
        runs.make_record("x", {}, {"run_id": 1})


def test_read_records_skips_only_a_truncated_last_line(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text(json.dumps({"run_id": "a"}) + "\n" + '{"run_id": "b", "be')
    assert [r["run_id"] for r in runs.read_records(p)] == ["a"]
    p.write_text('{"run_id": "b", "be\n' + json.dumps({"run_id": "a"}) + "\n")
    with pytest.raises(ValueError, match=":1:"):
        runs.read_records(p)


# ----------------------------------------------------------------------------- schema.py
SCHEMA = {
    "seeds": ListOf(Int(min=0), min_len=1, unique=True),
    "threads": AnyOf(Choice("auto"), Int(min=0)),
    "resume": Bool(),
    "student": {"epochs": Int(min=1), "arch": Choice("resnet8", "resnet20")},
    "teacher": {"epochs": Int(min=1)},
    "loss": {"tau": Float(min=0, min_open=True), "fraction": Float(min=0, max=1), "name": Choice("a", "b", none=True)},
    "meta": Section({}, open=True),
}


def test_validate_normalises_without_modifying():
    cfg = {"seeds": [0, 1], "threads": "auto", "loss": {"tau": 2, "fraction": 1}, "meta": {"free": [1]}}
    out = validate(cfg, SCHEMA)
    assert out["loss"] == {"tau": 2.0, "fraction": 1.0} and isinstance(out["loss"]["tau"], float)
    assert cfg["loss"]["tau"] == 2 and isinstance(cfg["loss"]["tau"], int)
    assert validate({"threads": 2}, SCHEMA) == {"threads": 2} and validate({"loss": {"name": None}}, SCHEMA)


@pytest.mark.parametrize("cfg, match", [
    ({"student": {"epoch": 3}}, r"unknown key 'student.epoch'.*student.epochs"),
    ({"loss": {"betta": 1}}, r"unknown key 'loss.betta'"),
    ({"studnt": {"epochs": 3}}, r"did you mean student\?"),
    ({"epochs": 3}, r"student.epochs, teacher.epochs"),
    ({"loss": {"tau": 0}}, r"loss.tau must be > 0, got 0"),
    ({"loss": {"tau": -1.5}}, r"loss.tau must be > 0"),
    ({"loss": {"tau": float("inf")}}, r"finite"),
    ({"loss": {"tau": "4"}}, r"loss.tau must be a number"),
    ({"loss": {"fraction": 1.5}}, r"loss.fraction must be >= 0 and <= 1"),
    ({"student": {"epochs": -1}}, r"student.epochs must be >= 1, got -1"),
    ({"student": {"epochs": 2.5}}, r"student.epochs must be an integer"),
    ({"student": {"epochs": True}}, r"an integer"),
    ({"student": {"arch": "resnet9"}}, r"student.arch must be one of .*did you mean resnet8"),
    ({"student": 3}, r"student must be a mapping"),
    ({"seeds": []}, r"seeds must be a list of at least 1"),
    ({"seeds": [0, 0]}, r"repeated"),
    ({"seeds": [0, -1]}, r"seeds\[1\] must be >= 0"),
    ({"seeds": 3}, r"must be a list"),
    ({"threads": "many"}, r"threads must be one of auto or an integer"),
    ({"resume": "yes"}, r"resume must be true or false"),
])
def test_validate_errors(cfg, match):
    with pytest.raises(ConfigError, match=match):
        validate(cfg, SCHEMA)


@pytest.mark.parametrize("text, match", [
    ("0,a", "'a' is not an integer"), ("1.5", "'1.5' is not an integer"), ("-1", "below 0"),
    ("", "empty"), (" ", "empty"), ("0,,1", "empty item"), ("1,1", "twice"),
])
def test_parse_int_list_errors(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_int_list(text)


def test_parse_int_list_ok():
    assert parse_int_list("0, 1,2") == [0, 1, 2]


# ----------------------------------------------------------------------------- report.py
def test_mean_ci_against_t_table():
    m, h = report.mean_ci([10.0, 12.0, 14.0, 16.0])   # sd 2.582, t_{0.975,3} = 3.182
    assert m == 13.0 and h == pytest.approx(3.182446 * 2.5819889 / 2, rel=1e-5)
    assert math.isnan(report.mean_ci([1.0])[1]) and math.isnan(report.mean_ci([])[0])


def test_paired_uses_common_keys():
    p = report.paired({0: 5.0, 1: 7.0, 2: 9.0}, {1: 6.0, 2: 6.0, 3: 0.0})
    assert p["keys"] == [1, 2] and p["diffs"] == [1.0, 3.0] and p["mean"] == 2.0
    assert p["lo"] == pytest.approx(2.0 - 12.7062047 * 1.0, rel=1e-5)
    assert report.fmt_ci(2.0, 0.5, signed=True) == "+2.00 ± 0.50" and report.fmt_ci(1, math.nan) == "1.00 ± n/a"


def test_write_table_and_blocks(tmp_path):
    rows = [{"method": "KD", "acc": "1.00 ± 0.10"}, {"method": "KD|x", "acc": "2"}]
    md = report.write_table(rows, tmp_path / "t", "Title", note="a note")
    assert md.startswith("### Title") and "| KD | 1.00 ± 0.10 |" in md and "a note" in md
    rst = (tmp_path / "t.rst").read_text()
    assert ".. list-table:: Title" in rst and "   * - KD\\|x" in rst and "a note" in rst
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == "method,acc"
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- report:t -->\nold\n<!-- /report:t -->\nend\n")
    assert report.replace_block(readme, "t", md) is True
    assert report.replace_block(readme, "t", md) is False
    text = readme.read_text()
    assert "old" not in text and "| KD | 1.00 ± 0.10 |" in text and text.endswith("<!-- /report:t -->\nend\n")
    with pytest.raises(ValueError, match="report:missing"):
        report.replace_block(readme, "missing", "x")


def test_bar_figure_writes_png(tmp_path):
    report.bar_figure({"Mixup": [("KD", 70.0, 1.0), ("KD-i", 72.0, math.nan)], "CutMix": [("KD", 70.0, 1.0)]},
                      tmp_path / "f.png", "accuracy (%)", "title")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("mod", [runs, schema, report])
def test_docstring_examples(mod):
    import doctest

    r = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert r.attempted > 0 and r.failed == 0


def test_block_names(tmp_path):
    p = tmp_path / "r.md"
    p.write_text("<!-- report:a -->\n<!-- /report:a -->\nx `<!-- report:NAME -->`\n<!-- report:fig4 -->\n"
                 "<!-- /report:fig4 -->\n")
    assert report.block_names(p) == ["a", "fig4"]


def test_readme_blocks_are_the_committed_reports():
    """Every ``<!-- report:NAME -->`` block of examples/kd/README.md is, byte for byte, the
    generated file the docs include (docs/kd/quick/NAME.md; text-NAME: docs/kd/text-quick/NAME.md;
    fmnist-NAME: docs/kd/fmnist/NAME.md), so the README and the docs quote the reports and neither
    is edited by hand."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    readme = root / "examples" / "kd" / "README.md"
    names = report.block_names(readme)
    assert "table1" in names and "text-table4" in names and "fmnist-table1" in names
    text = readme.read_text()
    folders = {"text": "text-quick", "fmnist": "fmnist"}
    for name in names:
        folder, base = (folders[name.split("-")[0]], name.split("-", 1)[1]) if "-" in name else ("quick", name)
        block = text.split(f"<!-- report:{name} -->\n", 1)[1].split(f"<!-- /report:{name} -->", 1)[0]
        generated = (root / "docs" / "kd" / folder / f"{base}.md").read_text()
        assert block.rstrip("\n") == generated.rstrip("\n"), name
