"""The ``sciclr`` command: version, help texts, and the exit-code convention of
:func:`sciclr.cli.common.run_verb` (0 done, 2 user error in one line, 75 resumable, anything
else a traceback)."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sciclr
from sciclr.cli import build_parser, main
from sciclr.cli.common import EXIT_OK, EXIT_RESUMABLE, EXIT_USER_ERROR, run_verb
from sciclr.errors import SciclrError
from sciclr.train.signals import TrainingInterrupted
from tests.conftest import REPO

VERSION = importlib.metadata.version("sciclr")
DNA = {
    "name": "genomics",
    "domain": "dna",
    "input": str(REPO / "resources" / "dna" / "tiny" / "genomics_tiny.fasta"),
    "labels": str(REPO / "resources" / "dna" / "tiny" / "labels.tsv"),
    "id_column": "id",
    "split_column": "split",
    "tasks": [{"column": "label", "type": "classification"}],
    "baselines": {"kmer_k": [4, 6]},
}


class BrokenDomain:
    """A plug-in domain with a bug (``tests.cli.test_cli:BROKEN``)."""

    name = "broken"
    parse_stage = False

    def baseline_names(self, cfg):
        raise RuntimeError("broken domain")


BROKEN = BrokenDomain()


def _sciclr(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    return subprocess.run(
        [sys.executable, "-m", "sciclr", *args],
        cwd=cwd or REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _verbs() -> dict[str, argparse.ArgumentParser]:
    sub = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(sub) == 1
    return dict(sub[0].choices)


# --- version, help ----------------------------------------------------------------------------


def test_version_of_the_console_script():
    script = Path(sys.executable).with_name("sciclr")
    exe = str(script) if script.exists() else shutil.which("sciclr")
    assert exe, "the sciclr console script is not installed"
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"sciclr {VERSION}\n"
    assert sciclr.__version__ == VERSION


def test_python_dash_m_sciclr():
    proc = _sciclr("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"sciclr {VERSION}\n"


def test_every_verb_and_option_has_a_help_text():
    verbs = _verbs()
    assert {"parse", "preprocess", "gather", "features", "train", "embed", "probe"} <= set(verbs)
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in sub._choices_actions}
    missing = [name for name in verbs if not helps.get(name)]
    for name, parser in verbs.items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    top = [a for a in build_parser()._actions if not isinstance(a, argparse._SubParsersAction)]
    missing += [a.dest for a in top if not a.help]
    assert not missing, f"options without a help text: {missing}"


# --- exit codes -------------------------------------------------------------------------------


def test_run_verb_codes():
    def ok(args):
        return "ignored"

    def user(args):
        raise SciclrError("bad input")

    def stopped(args):
        raise TrainingInterrupted(signal.SIGUSR1, 3)

    def bug(args):
        raise KeyError("bug")

    ns = argparse.Namespace()
    assert (EXIT_OK, EXIT_USER_ERROR, EXIT_RESUMABLE) == (0, 2, 75)
    assert run_verb(ok, ns) == 0
    assert run_verb(user, ns) == 2
    assert run_verb(stopped, ns) == 75
    with pytest.raises(KeyError, match="bug"):
        run_verb(bug, ns)


def test_exit_0_on_success(tmp_path, capsys):
    params = tmp_path / "params.json"
    params.write_text(json.dumps(DNA))
    shard = tmp_path / "shard0"
    assert main(["preprocess", "--params", json.dumps(DNA), "--out", str(shard)]) == 0
    assert main(["gather", "--params", f"@{params}", "--out", str(tmp_path / "p"), str(shard)]) == 0
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [
        "data.pt",
        "records.tsv",
        "rejects.tsv",
        "summary.json",
    ]
    argv = ["features", "--params", str(params), "--data", str(tmp_path / "p")]
    assert main([*argv, "--out", str(tmp_path / "f"), "--names", "kmer4"]) == 0
    assert [p.name for p in (tmp_path / "f").iterdir()] == ["kmer4.npz"]
    with np.load(tmp_path / "f" / "kmer4.npz") as z:
        assert z["X"].shape == (180, 136)
    assert "sciclr: error" not in capsys.readouterr().err


def test_exit_2_is_one_stderr_line():
    proc = _sciclr("gather", "--params", '{"domain": ', "--out", "X", "missing_dir")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "sciclr: error: --params: invalid JSON (Expecting value: line 1 column 12 (char 11))"
    ]
    # stdout is not a terminal here, as in a rule's log: it holds the command, to rerun it
    assert (
        proc.stdout
        == "[sciclr] command: sciclr gather --params '{\"domain\": ' --out X missing_dir\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["parse", "--params", '{"domain": "dna"}', "--out", "{tmp}/p.pt"],
            "domain 'dna' has no parse stage: run `sciclr preprocess`",
        ),
        (
            [
                "features",
                "--params",
                '{"domain": "dna"}',
                "--data",
                "{tmp}",
                "--out",
                "{tmp}",
                "--names",
                "kmer5",
            ],
            "unknown baseline feature set(s) ['kmer5']; the data set has ['kmer4', 'kmer6']",
        ),
        (
            [
                "train",
                "--params",
                '{"domain": "dna", "train": {"epoch": 1}}',
                "--data",
                "{tmp}",
                "--out",
                "{tmp}",
            ],
            "params: train: unknown key 'epoch'",
        ),
        (
            ["embed", "--params", "{tmp}/nothere.json", "--data", "{tmp}", "--out", "{tmp}/e"],
            "--params {tmp}/nothere.json: neither a JSON object nor an existing file",
        ),
    ],
    ids=["parse-dna", "features-unknown", "train-bad-key", "embed-no-params-file"],
)
def test_exit_2_on_a_sciclr_error(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "sciclr" in line]
    assert len(err) == 1
    assert err[0].startswith("sciclr: error: " + message.replace("{tmp}", str(tmp_path)))


def test_gather_of_a_missing_shard_folder_is_a_user_error(tmp_path, capsys):
    code = main(
        [
            "gather",
            "--params",
            '{"domain": "dna"}',
            "--out",
            str(tmp_path / "X"),
            str(tmp_path / "missing_dir"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("sciclr: error: ")
    assert "missing_dir" in err[0]


def test_exit_75_when_training_is_interrupted(tmp_path, monkeypatch, capsys):
    import sciclr.train.run

    seen = {}

    def interrupted(params, data, out, resume=None, tensorboard_dir=None, init=None):
        seen.update(params=params, data=data, out=out, resume=resume)
        raise TrainingInterrupted(signal.SIGTERM, 12)

    monkeypatch.setattr(sciclr.train.run, "run_training", interrupted)
    argv = ["train", "--params", '{"domain": "dna"}', "--data", "d", "--out", "o"]
    assert main([*argv, "--resume", "r.pt"]) == 75
    assert seen == {"params": {"domain": "dna"}, "data": "d", "out": "o", "resume": "r.pt"}
    err = capsys.readouterr().err
    assert (
        "sciclr train: stopped by SIGTERM after step 12; state saved; run the same command "
        "again to resume"
    ) in err


def test_an_unexpected_exception_propagates(monkeypatch):
    import sciclr.train.run

    def buggy(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(sciclr.train.run, "run_training", buggy)
    with pytest.raises(ZeroDivisionError, match="a bug"):
        main(["train", "--params", '{"domain": "dna"}', "--data", "d", "--out", "o"])


def test_an_unexpected_exception_is_a_traceback(tmp_path):
    params = json.dumps({"domain": "tests.cli.test_cli:BROKEN"})
    proc = _sciclr("features", "--params", params, "--data", str(tmp_path), "--out", str(tmp_path))
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.splitlines()[-1] == "RuntimeError: broken domain"
    assert "sciclr: error" not in proc.stderr


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nosuchverb"],
        ["gather", "--out", "x", "shard0"],  # --params missing
        ["gather", "--params", "{}", "--out", "x"],  # no shard folder
        ["preprocess", "--params", "{}", "--out", "x", "--shard", "one"],
        ["train", "--params", "{}", "--data", "d", "--out", "o", "--bogus"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage: sciclr" in err and "error:" in err
