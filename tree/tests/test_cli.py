"""python -m tree: output, files written, exit codes, messages.

The main paths run for real in subprocesses (``run``); the tables of mistakes call the same
``main`` in this process (``cli``), which is what a subprocess runs, minus a second of
imports each: an exception that escaped ``main`` would fail those tests outright.
"""

import os
import shutil
import subprocess
import sys

import pytest

from .conftest import DATA
from .test_classifier import SEED_TREE

MAILS = str(DATA / "mails.csv")


def run(*args, cwd):
    done = subprocess.run(
        [sys.executable, "-m", "tree", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``tree.cli.main`` here with *args* in *cwd*; return ``(status, stdout, stderr)``."""
    from tree.cli import main

    def call(*args, cwd):
        monkeypatch.chdir(cwd)
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse: --help, and usage errors
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return call


def squeeze(text):
    """Each line with its runs of spaces made one (the tables align with padding)."""
    return [" ".join(line.split()) for line in text.splitlines()]


def test_fit_trace_prints_the_seeds_tables_and_tree(tmp_path):
    code, out, err = run(
        "fit", MAILS, "--target", "label", "--log-base", "10", "--trace", cwd=tmp_path
    )
    assert code == 0, err
    lines = squeeze(out)
    root = lines[: lines.index("")]
    assert root[0] == "[root] 10 rows: spam 5/10, ham 5/10; entropy 0.301"
    for row in [
        "length spam ham entropy",
        "long 4/7 3/7 0.2965",
        "short 1/3 2/3 0.2764",
        "image spam ham entropy",
        "Y 2/7 5/7 0.2598",
        "N 3/3 0/3 0",
        "bitcoin spam ham entropy",
        "Y 4/5 1/5 0.2173",  # the seed shortens it to 0.217
        "N 1/5 4/5 0.2173",
        "weighted 0.2905, gain 0.0104",  # numbers are cut after four decimals, as the seed's
        "weighted 0.1818, gain 0.1191",
        "weighted 0.2173, gain 0.0837",
        "=> split on image (highest gain 0.1191)",
    ]:
        assert row in root
    assert "[image = Y] 7 rows: spam 2/7, ham 5/7; entropy 0.2598" in lines
    assert "=> split on bitcoin (highest gain 0.1413)" in lines
    assert "[image = Y, bitcoin = Y] 3 rows: spam 2/3, ham 1/3; entropy 0.2764" in lines
    assert "=> split on length (highest gain 0.2764)" in lines
    assert out.rstrip().endswith(SEED_TREE)


def test_fit_with_the_seeds_unweighted_rule_prints_the_sums(cli, tmp_path):
    code, out, _ = cli(
        "fit",
        MAILS,
        "--target",
        "label",
        "--log-base",
        "10",
        "--trace",
        "--criterion",
        "unweighted_entropy",
        cwd=tmp_path,
    )
    assert code == 0
    lines = squeeze(out)
    assert "sum 0.573, weighted 0.2905, gain 0.0104" in lines  # length: 0.2965 + 0.2764
    assert "sum 0.2598, weighted 0.1818, gain 0.1191" in lines  # image: 0.2598 + 0
    assert "sum 0.4346, weighted 0.2173, gain 0.0837" in lines  # bitcoin: 0.217 + 0.217
    assert "=> split on image (lowest sum of entropies 0.2598)" in lines
    assert out.rstrip().endswith(SEED_TREE)


def test_fit_out_then_predict_and_show(cli, tmp_path):
    code, _, err = run("fit", MAILS, "--target", "label", "--out", "model.json", cwd=tmp_path)
    assert code == 0 and "model.json" in err
    new = tmp_path / "new.csv"
    new.write_text("image,length,bitcoin\nY,short,Y\nN,long,N\nY,medium,Y\n")
    code, out, err = run("predict", "model.json", new, "--proba", cwd=tmp_path)
    assert code == 0, err
    assert out.splitlines() == [
        "label,p_ham,p_spam",
        "ham,1.0,0.0",
        "spam,0.0,1.0",
        "spam,0.333333,0.666667",  # unseen "medium": the node's 1 ham and 2 spam
    ]
    code, _, _ = run("predict", "model.json", MAILS, "--out", "pred.csv", cwd=tmp_path)
    assert code == 0
    assert (tmp_path / "pred.csv").read_text().splitlines()[1:4] == ["spam", "spam", "spam"]
    code, out, _ = cli("show", "model.json", cwd=tmp_path)
    assert code == 0 and out.rstrip() == SEED_TREE
    code, out, _ = cli("show", "model.json", "--dot", cwd=tmp_path)
    assert code == 0 and out.startswith("digraph ID3 {")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_show_png_writes_a_png(cli, tmp_path):
    cli("fit", MAILS, "--target", "label", "--out", "model.json", cwd=tmp_path)
    code, _, err = run("show", "model.json", "--png", "tree.png", cwd=tmp_path)
    assert code == 0, err
    assert (tmp_path / "tree.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ["fit", MAILS, "--target", "spam"], "has no column 'spam' (--target)"),
        ({"empty.csv": b""}, ["fit", "empty.csv", "--target", "label"], "is empty"),
        ({"head.csv": b"label,image\n"}, ["fit", "head.csv", "--target", "label"], "no data rows"),
        (None, ["fit", "nowhere.csv", "--target", "label"], "cannot read nowhere.csv"),
        (
            {"bad.csv": b"\xff\xfe\x00\x81\x9f\xa0\n\x00\x00"},
            ["fit", "bad.csv", "--target", "label"],
            "cannot read bad.csv",
        ),
        (
            {"nolabel.csv": b"label,image\nspam,Y\n,N\n"},
            ["fit", "nolabel.csv", "--target", "label"],
            "missing label",
        ),
        ({"m.json": b'{"weights": [1, 2]}'}, ["show", "m.json"], "not a tree model"),
        ({"m.json": b"label,image\n"}, ["predict", "m.json", MAILS], "not a tree model"),
        ({"m.json": b"\x80\x04\x95pickle"}, ["show", "m.json"], "not a tree model"),
        (None, ["show", "missing.json"], "cannot read missing.json"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(cli, tmp_path, setup, args, message):
    for name, content in (setup or {}).items():
        (tmp_path / name).write_bytes(content)
    code, out, err = cli(*args, cwd=tmp_path)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err


def test_predict_names_the_columns_the_model_needs(cli, tmp_path):
    cli("fit", MAILS, "--target", "label", "--out", "model.json", cwd=tmp_path)
    (tmp_path / "few.csv").write_text("image\nY\n")
    code, _, err = cli("predict", "model.json", "few.csv", cwd=tmp_path)
    assert code == 2 and "lacks the model's column(s): length, bitcoin" in err


def test_usage_errors_exit_2(cli):
    code, _, err = cli("fit", MAILS, cwd=".")
    assert code == 2 and "--target" in err


def test_help_lists_the_exit_codes(cli):
    for args in (["--help"], ["fit", "--help"], ["predict", "--help"]):
        code, out, _ = cli(*args, cwd=".")
        assert code == 0 and "exit status:" in out and "2  a user mistake" in out


def test_predict_out_never_overwrites_the_model_or_the_data(cli, tmp_path):
    cli("fit", MAILS, "--target", "label", "--out", "model.json", cwd=tmp_path)
    model = (tmp_path / "model.json").read_bytes()
    shutil.copy(MAILS, tmp_path / "mails.csv")
    data = (tmp_path / "mails.csv").read_bytes()
    for out, what in [("model.json", "is the model"), ("./mails.csv", "is the data")]:
        code, _, err = cli("predict", "model.json", "mails.csv", "--out", out, cwd=tmp_path)
        assert code == 2 and what in err and err.count("\n") == 1, err
        assert "Traceback" not in err
    assert (tmp_path / "model.json").read_bytes() == model
    assert (tmp_path / "mails.csv").read_bytes() == data


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("mails.csv", "is the data"),
        ("folder", "is a folder"),
        ("locked/model.json", "is not writable"),
        ("plain.txt/model.json", "is not a folder"),
    ],
)
def test_fit_out_is_checked_before_fitting(cli, tmp_path, out, message):
    shutil.copy(MAILS, tmp_path / "mails.csv")
    (tmp_path / "folder").mkdir()
    (tmp_path / "locked").mkdir(mode=0o500)
    (tmp_path / "plain.txt").write_text("keep me\n")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code, out_text, err = cli("fit", "mails.csv", "--target", "label", "--out", out, cwd=tmp_path)
    if message == "is not writable" and os.access(tmp_path / "locked", os.W_OK):
        pytest.skip("running as a user who may write anywhere (root)")
    assert code == 2 and message in err and err.startswith("error: ") and out_text == ""
    assert "Traceback" not in err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_fit_out_creates_a_missing_folder_and_debug_shows_tracebacks(cli, tmp_path):
    code, _, err = cli("fit", MAILS, "--target", "label", "--out", "new/dir/m.json", cwd=tmp_path)
    assert code == 0, err
    assert (tmp_path / "new/dir/m.json").read_text().startswith('{"format"')
    assert not list((tmp_path / "new/dir").glob(".m.json.*"))  # no temporary file left
    code, _, err = cli("fit", MAILS, "--target", "spam", "--debug", cwd=tmp_path)
    assert (
        code == 2
        and "Traceback" in err
        and err.rstrip().endswith("(--target); its columns are: label, length, image, bitcoin")
    )


def test_fit_takes_the_c45_flags(cli, tmp_path):
    code, out, err = cli(
        "fit", MAILS, "--target", "label", "--criterion", "gain_ratio", "--prune", "error",
        "--confidence", "0.25", "--min-samples-leaf", "1", "--ccp-alpha", "0",
        "--categorical-split", "subsets", cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, err
    # C4.5 keeps the seed's tree: its leaves' estimate, 3 U(0,3) + 4 U(0,4) + 2 U(0,2) +
    # 1 U(0,1) = 1.11 + 1.17 + 1.0 + 0.75 = 4.03 errors, is below one leaf's 5 + 1.5
    assert out.rstrip().endswith(SEED_TREE)
    code, _, err = cli("fit", MAILS, "--target", "label", "--confidence", "2", cwd=tmp_path)
    assert code == 2 and err == "error: confidence must be a number in (0, 1); got 2.0\n"


def test_the_readme_shows_the_real_trace_and_tree(cli, tmp_path):
    path = DATA.parents[1] / "README.md"
    if not path.exists():
        pytest.skip("not run from a checkout of the repository")
    readme = path.read_text()
    section = readme[readme.index("<!-- tree:begin -->") : readme.index("<!-- tree:end -->")]
    blocks = [b.split("```", 1)[0] for b in section.split("```text\n")[1:]]
    code, out, _ = cli(
        "fit", MAILS, "--target", "label", "--log-base", "10", "--trace", cwd=tmp_path
    )
    assert code == 0
    shown = blocks[0].rstrip("\n").split("\n")
    assert shown[-1] == "..."
    readme_lines = [line for line in shown[:-1] if line]
    assert [line for line in out.splitlines() if line][: len(readme_lines)] == readme_lines
    assert blocks[1].rstrip("\n") == SEED_TREE
