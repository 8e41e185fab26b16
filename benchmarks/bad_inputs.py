"""Throw bad and edge inputs at every musiclens command and count how each one ends.

Not a test: a measuring script, run before and after a change to count the failure classes.

    python benchmarks/bad_inputs.py                          # the checkout this file is in
    python benchmarks/bad_inputs.py --src /path/to/checkout  # another tree (PYTHONPATH=<src>/src)
    python benchmarks/bad_inputs.py --csv out.csv --only rsa # write the table; run matching cases only

It first builds small valid fixtures with the CLI under test (a 26-note stimulus set, feature
stores, hand-made .npz files, a 4-piece corpus, a 2-step training run, a stimuli-only study run,
NSynth/MAESTRO/MIDI/Hugging Face look-alikes), then damages copies of them, then runs every case
as ``python -m musiclens ...`` in a subprocess (cwd: the temp folder) with a timeout.  Each case
says what is correct - an error (``error``), success (``ok``), or either a clean refusal or
success (``either``, legal edge inputs) - and ends in exactly one class:

``clean_error``  exit 2 with a line starting ``error:`` (or the argument parser's usage error box)
                 and no Python traceback - what a bad input should get;
``traceback``    a Python traceback, any other non-zero exit without an ``error:`` line, or a
                 failure (even a clean one) on an input that must succeed (``ok`` cases);
``silent``       exit 0 although the input was bad, or a success whose output is wrong (NaN
                 statistics, rows matched to the wrong stimuli);
``destroyed``    a file or folder musiclens did not write (a foreign --out folder, any input
                 named on the command line) was changed or deleted, or code from a model, pickle
                 or YAML file ran (a marker file appeared) - checked after the run, overrides the rest;
``ok_expected``  exit 0 where success is right;
``timeout``      still running after ``--timeout`` seconds.

The detail column holds the ``error:`` line, the last line of a traceback, or the symptom; a
clean error that left files in its output folder says so there ("after writing ...").
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bad_input_fixtures import _foreign, fixtures  # noqa: E402  (the script's own folder is on sys.path)

HERE = Path(__file__).resolve().parents[1]
CLASSES = ("clean_error", "ok_expected", "traceback", "silent", "destroyed", "timeout")
_EXC = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)\b")
RO_OUT = Path("/sys/kernel/musiclens-bad-input")  # refuses mkdir even for root


@dataclass
class Case:
    name: str
    args: list[str]
    expect: str = "error"                       # "error", "ok" or "either"
    protect: list[Path] = field(default_factory=list)   # must be unchanged afterwards (besides the inputs)
    verify: Callable[[], str | None] | None = None     # after exit 0: a symptom string if the output is wrong


# ----------------------------------------------------------------------------------------------- helpers

def _snapshot(paths: list[Path]) -> dict[str, str]:
    out: dict[str, str] = {}
    for root in paths:
        if root.is_file():
            out[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
        elif root.is_dir():
            out[str(root)] = "dir"
            for p in sorted(root.rglob("*")):
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        else:
            out[str(root)] = "absent"
    return out


def _diff(before: dict[str, str], after: dict[str, str]) -> str:
    added = sorted(k for k in after if before.get(k, "absent") == "absent" and after[k] != "absent")
    gone = sorted(k for k in before if before[k] != "absent" and after.get(k, "absent") == "absent")
    changed = sorted(k for k in before if k in after and before[k] not in ("absent", after[k])
                     and after[k] != "absent")
    parts = []
    for label, keys in (("deleted", gone), ("changed", changed), ("added", added)):
        if keys:
            names = ", ".join(Path(k).name for k in keys[:3]) + (" ..." if len(keys) > 3 else "")
            parts.append(f"{label} {len(keys)}: {names}")
    return "; ".join(parts)


def _out_of(args: list[str]) -> str | None:
    for i, a in enumerate(args[:-1]):
        if a in ("--out", "-o"):
            return args[i + 1]
    return None


def _lines(text: str) -> list[str]:
    return [x.strip() for x in text.replace("\r", "\n").splitlines() if x.strip()]


class Runner:
    def __init__(self, python: str, src: Path, tmp: Path, timeout: float) -> None:
        self.python = python
        self.env = dict(os.environ, PYTHONPATH=str(src / "src"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                        PYTHONWARNINGS="ignore", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
                        TRANSFORMERS_OFFLINE="1", COLUMNS="200")
        self.tmp, self.timeout = tmp, timeout

    def imported_from(self) -> str:
        proc = subprocess.run([self.python, "-c", "import musiclens; print(musiclens.__file__)"],
                              capture_output=True, text=True, env=self.env, cwd=self.tmp, timeout=120)
        return proc.stdout.strip() or proc.stderr.strip()

    def run(self, args: list[str]) -> tuple[subprocess.CompletedProcess | None, float]:
        start = time.monotonic()
        try:
            proc = subprocess.run([self.python, "-m", "musiclens", *args], capture_output=True, text=True,
                                  env=self.env, timeout=self.timeout, cwd=self.tmp, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            proc = None
        return proc, time.monotonic() - start

    def must(self, args: list[str], *, allow_fail: bool = False) -> bool:
        proc, _ = self.run(args)
        if proc is None or proc.returncode != 0:
            msg = f"fixture command failed: musiclens {' '.join(args)}\n{proc.stderr[-1500:] if proc else 'timeout'}"
            if allow_fail:
                print("warning: " + msg.splitlines()[0], file=sys.stderr)
                return False
            raise SystemExit(msg)
        return True


def _rsa_values(folder: Path):  # noqa: ANN202
    import pandas as pd

    return pd.read_csv(folder / "rsa.csv")


def rsa_no_nan(folder: Path) -> Callable[[], str | None]:
    def check() -> str | None:
        if not (folder / "rsa.csv").is_file():
            return f"exit 0 but no rsa.csv in {folder.name}"
        df = _rsa_values(folder)
        bad = df[df["value"].isna() & df["note"].isna()] if "note" in df else df[df["value"].isna()]
        return f"{len(bad)} NaN statistic(s) in rsa.csv without a note" if len(bad) else None
    return check


def rsa_same_as(folder: Path, ref: Path) -> Callable[[], str | None]:
    def check() -> str | None:
        if not (folder / "rsa.csv").is_file() or not (ref / "rsa.csv").is_file():
            return "exit 0 but rsa.csv (or the reference) is missing"
        a, b = _rsa_values(folder), _rsa_values(ref)
        if len(a) != len(b) or not np.allclose(a["value"].to_numpy(float), b["value"].to_numpy(float),
                                               equal_nan=True, atol=1e-9):
            return "rsa.csv differs from the run on the same rows in stimulus order (rows matched wrongly)"
        return None
    return check


def exists(path: Path) -> Callable[[], str | None]:
    return lambda: None if path.exists() else f"exit 0 but {path.name} was not written"


# -------------------------------------------------------------------------------------------------- cases

def cases(t: Path, f: dict[str, Path]) -> list[Case]:  # noqa: PLR0915
    stim, store, corpus, bb = str(f["stim"]), str(f["store"]), str(f["corpus"]), str(f["backbone"])
    n = iter(range(1000))
    out = lambda: str(t / f"out_{next(n):03d}")  # noqa: E731
    a_file, ro = t / "a_file.txt", str(RO_OUT)
    fr_count = iter(range(1000))

    def fr() -> Path:
        return _foreign(t / f"foreign_{next(fr_count):02d}")

    def foreign_cases(label: str, argv: list[str], *, overwrite: str | None = "--overwrite") -> list[Case]:
        f1, f2 = fr(), fr()
        c = [Case(f"{label} --out a file", [*argv, "--out", str(a_file)], protect=[a_file]),
             Case(f"{label} --out foreign folder", [*argv, "--out", str(f1)], protect=[f1]),
             Case(f"{label} --out read-only place", [*argv, "--out", ro])]
        if overwrite:
            c.append(Case(f"{label} --overwrite foreign folder", [*argv, overwrite, "--out", str(f2)], protect=[f2]))
        return c

    S = lambda name: str(t / name)  # noqa: E731, N806
    perms = ["--permutations", "20", "--bootstraps", "20", "--no-figures"]
    ref_rsa = t / "out_ref_rsa"
    fr_report = fr()
    c: list[Case] = [
        # --------------------------------------------------------------------- sanity (legal)
        Case("version", ["--version"], expect="ok"),
        Case("models list", ["models"], expect="ok"),
        Case("models layers of mfcc", ["models", "-m", "mfcc"], expect="ok"),
        Case("stimuli instruments --all", ["stimuli", "instruments", "--all"], expect="ok"),
        Case("unknown command", ["nosuchcmd"]),
        # --------------------------------------------------------------------- stimuli notes
        Case("notes --midi 60-abc", ["stimuli", "notes", "--midi", "60-abc", "--out", out()]),
        Case("notes --midi 72-60 (descending)", ["stimuli", "notes", "--midi", "72-60", "--out", out()]),
        Case("notes --midi empty", ["stimuli", "notes", "--midi", "", "--out", out()]),
        Case("notes --midi 200", ["stimuli", "notes", "--instruments", "flute", "--midi", "200", "--out", out()]),
        Case("notes --midi 20 out of flute range", ["stimuli", "notes", "--instruments", "flute", "--midi", "20",
                                                    "--out", out()]),
        Case("notes --velocities loud", ["stimuli", "notes", "--velocities", "loud", "--out", out()]),
        Case("notes --velocities 300", ["stimuli", "notes", "--midi", "60", "--velocities", "300", "--out", out()]),
        Case("notes unknown instrument", ["stimuli", "notes", "--instruments", "kazoo", "--midi", "60", "--out", out()]),
        Case("notes --duration -1", ["stimuli", "notes", "--midi", "60", "--duration", "-1", "--out", out()]),
        Case("notes --duration abc", ["stimuli", "notes", "--midi", "60", "--duration", "abc", "--out", out()]),
        Case("notes --hold > --duration", ["stimuli", "notes", "--instruments", "flute", "--midi", "60",
                                           "--duration", "0.5", "--hold", "2", "--out", out()], expect="either"),
        Case("notes --sample-rate 0", ["stimuli", "notes", "--midi", "60", "--sample-rate", "0", "--out", out()]),
        Case("notes --sample-rate -16000", ["stimuli", "notes", "--midi", "60", "--sample-rate", "-16000",
                                            "--out", out()]),
        Case("notes --sample-rate 8000 (legal)", ["stimuli", "notes", "--instruments", "flute", "--midi", "60-62",
                                                  "--sample-rate", "8000", "--duration", "0.5", "--hold", "0.3",
                                                  "--out", out()], expect="ok"),
        Case("notes unknown grid", ["stimuli", "notes", "--grid", "nosuch", "--out", out()]),
        Case("notes unknown synth", ["stimuli", "notes", "--midi", "60", "--synth", "theremin", "--out", out()]),
        Case("notes missing soundfont file", ["stimuli", "notes", "--midi", "60", "--soundfont",
                                              S("nope.sf2"), "--out", out()]),
        Case("notes corrupt soundfont file", ["stimuli", "notes", "--midi", "60", "--soundfont", S("bad.sf2"),
                                              "--out", out()]),
        Case("notes --normalize loud", ["stimuli", "notes", "--midi", "60", "--normalize", "loud", "--out", out()]),
        *foreign_cases("notes", ["stimuli", "notes", "--instruments", "flute", "--midi", "60", "--duration", "0.5",
                                 "--hold", "0.3"]),
        # --------------------------------------------------------------------- stimuli nsynth
        Case("nsynth tiny valid copy", ["stimuli", "nsynth", S("nsynth"), "--split", "valid", "--families", "flute",
                                        "--midi", "60-62", "--n-per-family", "2", "--out", out()], expect="ok"),
        Case("nsynth missing root", ["stimuli", "nsynth", S("nope"), "--out", out()]),
        Case("nsynth empty root", ["stimuli", "nsynth", S("emptydir"), "--out", out()]),
        Case("nsynth examples.json not JSON", ["stimuli", "nsynth", S("nsynth_badjson"), "--split", "valid",
                                               "--out", out()]),
        Case("nsynth records lack fields", ["stimuli", "nsynth", S("nsynth_fields"), "--split", "valid",
                                            "--out", out()]),
        Case("nsynth missing wav", ["stimuli", "nsynth", S("nsynth_missing_wav"), "--split", "valid", "--families",
                                    "flute", "--midi", "60-62", "--n-per-family", "2", "--out", out()]),
        Case("nsynth wav at 8 kHz", ["stimuli", "nsynth", S("nsynth_rate"), "--split", "valid", "--families", "flute",
                                     "--midi", "60-62", "--n-per-family", "2", "--out", out()]),
        Case("nsynth --midi 60-abc", ["stimuli", "nsynth", S("nsynth"), "--split", "valid", "--midi", "60-abc",
                                      "--out", out()]),
        Case("nsynth unknown family", ["stimuli", "nsynth", S("nsynth"), "--split", "valid", "--families", "kazoo",
                                       "--out", out()]),
        Case("nsynth --n-per-family -1", ["stimuli", "nsynth", S("nsynth"), "--split", "valid", "--families", "flute",
                                          "--midi", "60-62", "--n-per-family", "-1", "--out", out()]),
        # --------------------------------------------------------------------- extract
        Case("extract unknown model", ["extract", "-m", "nosuch", "-s", stim, "--out", out()]),
        Case("extract missing stimuli", ["extract", "-m", "mfcc", "-s", S("nope"), "--out", out()]),
        Case("extract stimuli is a file", ["extract", "-m", "mfcc", "-s", str(a_file), "--out", out()]),
        Case("extract corrupt wav", ["extract", "-m", "mfcc", "-s", S("st_corrupt_wav"), "--out", out()]),
        Case("extract missing wav", ["extract", "-m", "mfcc", "-s", S("st_missing_wav"), "--out", out()]),
        Case("extract NaN audio", ["extract", "-m", "mfcc", "-s", S("st_nan_audio"), "--out", out()]),
        Case("extract stereo clip", ["extract", "-m", "mfcc", "-s", S("st_stereo"), "--out", out()]),
        Case("extract one clip at 22.05 kHz", ["extract", "-m", "mfcc", "-s", S("st_22k"), "--out", out()]),
        Case("extract manifest rate 44.1k, files 16k", ["extract", "-m", "mfcc", "-s", S("st_wrong_rate"),
                                                        "--out", out()]),
        Case("extract manifest without sample_rate", ["extract", "-m", "mfcc", "-s", S("st_no_rate"), "--out", out()]),
        Case("extract manifest sample_rate string", ["extract", "-m", "mfcc", "-s", S("st_rate_str"), "--out", out()]),
        Case("extract manifest not JSON", ["extract", "-m", "mfcc", "-s", S("st_bad_manifest"), "--out", out()]),
        Case("extract metadata corrupt", ["extract", "-m", "mfcc", "-s", S("st_bad_meta"), "--out", out()]),
        Case("extract metadata without stimulus_id", ["extract", "-m", "mfcc", "-s", S("st_no_ids"), "--out", out()]),
        Case("extract duplicate stimulus ids", ["extract", "-m", "mfcc", "-s", S("st_dup_ids"), "--out", out()]),
        Case("extract silent clip (legal)", ["extract", "-m", "mfcc", "-s", S("st_silent"), "--out", out()],
             expect="ok"),
        Case("extract 8 kHz set (legal, resampled)", ["extract", "-m", "mfcc", "-s", str(f["stim_8k"]),
                                                      "--out", out()], expect="ok"),
        Case("extract --pooling weird", ["extract", "-m", "mfcc", "-s", stim, "--pooling", "weird", "--out", out()]),
        Case("extract --layers 99", ["extract", "-m", "mfcc", "-s", stim, "--layers", "99", "--out", out()]),
        Case("extract --batch-size 0", ["extract", "-m", "mfcc", "-s", stim, "--batch-size", "0", "--out", out()]),
        Case("extract --start 5 --stop 2", ["extract", "-m", "mfcc", "-s", stim, "--start", "5", "--stop", "2",
                                            "--out", out()]),
        Case("extract --window -1", ["extract", "-m", "mfcc", "-s", stim, "--window", "-1", "--out", out()]),
        Case("extract --device cuda (none here)", ["extract", "-m", "mfcc", "-s", stim, "--device", "cuda",
                                                   "--out", out()], expect="either"),
        Case("extract --device tpu", ["extract", "-m", "mfcc", "-s", stim, "--device", "tpu", "--out", out()]),
        Case("extract into a store of other stimuli", ["extract", "-m", "mfcc", "-s", str(f["stim2"]),
                                                       "--out", str(f["store1"])], protect=[f["store1"]]),
        Case("extract same request again (resume)", ["extract", "-m", "mfcc", "-s", str(f["stim2"]),
                                                     "--out", str(f["store2"])], expect="ok"),
        Case("extract HF dir (legal)", ["extract", "-m", S("hf_ok"), "-s", stim, "--out", out()], expect="ok"),
        Case("extract HF missing tensors", ["extract", "-m", S("hf_missing"), "-s", stim, "--out", out()]),
        Case("extract HF no weight files", ["extract", "-m", S("hf_noweights"), "-s", stim, "--out", out()]),
        Case("extract HF config.json not JSON", ["extract", "-m", S("hf_badconfig"), "-s", stim, "--out", out()]),
        Case("extract HF malicious pickle", ["extract", "-m", S("hf_pickle"), "-s", stim, "--out", out()]),
        Case("extract checkpoint malicious model.pt", ["extract", "-m", S("ckpt_evil"), "-s", stim, "--out", out()]),
        Case("extract malicious .pt file", ["extract", "-m", S("evil.pt"), "-s", stim, "--out", out()]),
        Case("extract checkpoint truncated weights", ["extract", "-m", S("ckpt_trunc"), "-s", stim, "--out", out()]),
        Case("extract checkpoint unknown family", ["extract", "-m", S("ckpt_family"), "-s", stim, "--out", out()]),
        Case("extract trained backbone (legal)", ["extract", "-m", bb, "-s", stim, "--out", out()], expect="ok"),
        *foreign_cases("extract", ["extract", "-m", "mfcc", "-s", stim]),
        # --------------------------------------------------------------------- models
        Case("models -m unknown", ["models", "-m", "nosuch"]),
        Case("models -m HF malicious pickle", ["models", "-m", S("hf_pickle")]),
        Case("models --option not JSON", ["models", "-m", "mfcc", "--option", "n_mfcc={oops"]),
        Case("models --option unknown key", ["models", "-m", "mfcc", "--option", "n_mfccc=13"]),
        Case("models --option without =", ["models", "-m", "mfcc", "--option", "n_mfcc"]),
        # --------------------------------------------------------------------- rsa
        Case("rsa npz with ids (legal)", ["rsa", "-a", S("ids.npz"), "-s", stim, *perms, "--out", str(ref_rsa)],
             expect="ok", verify=rsa_no_nan(ref_rsa)),
        Case("rsa npz rows shuffled, with ids (legal)", ["rsa", "-a", S("shuffled.npz"), "-s", stim, *perms,
                                                         "--out", str(t / "out_shuf_rsa")], expect="either",
             verify=rsa_same_as(t / "out_shuf_rsa", ref_rsa)),
        Case("rsa npz without ids", ["rsa", "-a", S("no_ids.npz"), "-s", stim, *perms, "--out", out()]),
        Case("rsa npz rows shuffled, without ids", ["rsa", "-a", S("shuffled_no_ids.npz"), "-s", stim, *perms,
                                                    "--out", out()]),
        Case("rsa npz without ids --assume-order (legal)", ["rsa", "-a", S("no_ids.npz"), "-s", stim, *perms,
                                                            "--assume-order", "--out", str(t / "out_ao_rsa")],
             expect="ok", verify=rsa_same_as(t / "out_ao_rsa", ref_rsa)),
        Case("rsa npz too few rows, without ids --assume-order", ["rsa", "-a", S("short_no_ids.npz"), "-s", stim,
                                                                  *perms, "--assume-order", "--out", out()]),
        Case("rsa npz with NaN", ["rsa", "-a", S("nan.npz"), "-s", stim, *perms, "--out", out()]),
        Case("rsa npz with inf", ["rsa", "-a", S("inf.npz"), "-s", stim, *perms, "--out", out()]),
        Case("rsa npz too few rows", ["rsa", "-a", S("short.npz"), "-s", stim, *perms, "--out", out()]),
        Case("rsa npz ids not in the set", ["rsa", "-a", S("wrong_ids.npz"), "-s", stim, *perms, "--out", out()]),
        Case("rsa npz duplicate ids", ["rsa", "-a", S("dup_ids.npz"), "-s", stim, *perms, "--out", out()]),
        Case("rsa npz integer ids", ["rsa", "-a", S("int_ids.npz"), "-s", stim, *perms, "--out", out()]),
        Case("rsa npz with no layers", ["rsa", "-a", S("ids_only.npz"), "-s", stim, *perms, "--out", out()]),
        Case("rsa npz layers of different lengths", ["rsa", "-a", S("ragged.npz"), "-s", stim, *perms,
                                                     "--out", out()]),
        Case("rsa npz 1-D layer", ["rsa", "-a", S("vector.npz"), "-s", stim, *perms,
                                   "--out", str(t / "out_vec_rsa")], expect="either",
             verify=rsa_no_nan(t / "out_vec_rsa")),
        Case("rsa npz constant layer", ["rsa", "-a", S("const.npz"), "-s", stim, *perms,
                                        "--out", str(t / "out_const_rsa")], expect="either",
             verify=rsa_no_nan(t / "out_const_rsa")),
        Case("rsa npz string layer", ["rsa", "-a", S("strings.npz"), "-s", stim, *perms, "--out", out()]),
        Case("rsa npz with pickled objects", ["rsa", "-a", S("pickled.npz"), "-s", stim, *perms, "--out", out()]),
        Case("rsa npz not a zip", ["rsa", "-a", S("garbage.npz"), "-s", stim, *perms, "--out", out()]),
        Case("rsa npz empty file", ["rsa", "-a", S("empty_file.npz"), "-s", stim, *perms, "--out", out()]),
        Case("rsa missing activations", ["rsa", "-a", S("nope.npz"), "-s", stim, "--out", out()]),
        Case("rsa store vs other stimulus set", ["rsa", "-a", str(f["store1"]), "-s", stim, *perms, "--out", out()]),
        Case("rsa too few stimuli (2 notes)", ["rsa", "-a", str(f["store2"]), "-s", str(f["stim2"]), *perms,
                                               "--subject", "none", "--out", out()]),
        Case("rsa store of a silent clip", ["rsa", "-a", str(f["store_silent"]), "-s", S("st_silent"), *perms,
                                            "--out", str(t / "out_silent_rsa")], expect="either",
             verify=rsa_no_nan(t / "out_silent_rsa")),
        Case("rsa metadata without stimulus_id", ["rsa", "-a", store, "-s", S("st_no_ids"), "--out", out()]),
        Case("rsa metadata without midi", ["rsa", "-a", store, "-s", S("st_no_midi"), "--out", out()]),
        Case("rsa misspelt model RDM", ["rsa", "-a", store, "-s", stim, "--models", "chromaa", "--out", out()]),
        Case("rsa empty --models", ["rsa", "-a", store, "-s", stim, "--models", "", "--out", out()]),
        Case("rsa unknown method", ["rsa", "-a", store, "-s", stim, "--method", "nosuch", "--out", out()]),
        Case("rsa unknown distance", ["rsa", "-a", store, "-s", stim, "--distance", "manhattan", "--out", out()]),
        Case("rsa unknown subject column", ["rsa", "-a", store, "-s", stim, "--subject", "nosuch", "--out", out()]),
        Case("rsa unknown test", ["rsa", "-a", store, "-s", stim, "--test", "z-test", "--out", out()]),
        Case("rsa --permutations -5", ["rsa", "-a", store, "-s", stim, "--permutations", "-5", "--out", out()]),
        Case("rsa --permutations many", ["rsa", "-a", store, "-s", stim, "--permutations", "many", "--out", out()]),
        Case("rsa --alpha 5", ["rsa", "-a", store, "-s", stim, *perms, "--alpha", "5", "--out", out()]),
        Case("rsa unknown correction", ["rsa", "-a", store, "-s", stim, "--correction", "holm-ish", "--out", out()]),
        Case("rsa --bootstrap-over nope", ["rsa", "-a", store, "-s", stim, "--bootstrap-over", "nope",
                                           "--out", out()]),
        Case("rsa unknown backend", ["rsa", "-a", store, "-s", stim, "--backend", "jax", "--out", out()]),
        Case("rsa one subject, permutation test (legal)",
             ["rsa", "-a", str(f["store1"]), "-s", str(f["stim1"]), "--test", "permutation", "--permutations", "50",
              "--bootstraps", "20", "--bootstrap-over", "pitches", "--out", out()], expect="ok"),
        Case("rsa 13 pitches with figures (legal)", ["rsa", "-a", store, "-s", stim, "--permutations", "20",
                                                     "--bootstraps", "20", "--out", out()], expect="ok"),
        *foreign_cases("rsa", ["rsa", "-a", store, "-s", stim, *perms], overwrite=None),
        # --------------------------------------------------------------------- probe
        Case("probe pitch_class by stimulus (legal)", ["probe", "-a", store, "-s", stim, "-t", "pitch_class",
                                                       "--group", "stimulus", "--max-epochs", "5", "--bootstraps",
                                                       "10", "--no-figures", "--out", out()], expect="ok"),
        Case("probe too few groups", ["probe", "-a", store, "-s", stim, "-t", "pitch_class", "--max-epochs", "5",
                                      "--no-figures", "--out", out()]),
        Case("probe missing activations", ["probe", "-a", S("nope"), "-s", stim, "-t", "pitch", "--out", out()]),
        Case("probe unknown task", ["probe", "-a", store, "-s", stim, "-t", "nosuch", "--out", out()]),
        Case("probe frame task on pooled store", ["probe", "-a", store, "-s", stim, "-t", "notes", "--out", out()]),
        Case("probe unknown head", ["probe", "-a", store, "-s", stim, "-t", "pitch", "--probe", "svm",
                                    "--out", out()]),
        Case("probe --lr fast", ["probe", "-a", store, "-s", stim, "-t", "pitch", "--lr", "fast", "--out", out()]),
        Case("probe --max-epochs 0", ["probe", "-a", store, "-s", stim, "-t", "pitch", "--group", "stimulus",
                                      "--max-epochs", "0", "--out", out()]),
        Case("probe --batch-size -1", ["probe", "-a", store, "-s", stim, "-t", "pitch", "--group", "stimulus",
                                       "--batch-size", "-1", "--out", out()]),
        Case("probe unknown group column", ["probe", "-a", store, "-s", stim, "-t", "pitch", "--group", "nosuch",
                                            "--out", out()]),
        Case("probe store vs other stimulus set", ["probe", "-a", str(f["store1"]), "-s", stim, "-t", "pitch",
                                                   "--group", "stimulus", "--out", out()]),
        Case("probe npz with NaN", ["probe", "-a", S("nan.npz"), "-s", stim, "-t", "pitch", "--group", "stimulus",
                                    "--out", out()]),
        Case("probe npz rows shuffled, without ids", ["probe", "-a", S("shuffled_no_ids.npz"), "-s", stim, "-t",
                                                      "pitch", "--group", "stimulus", "--out", out()]),
        Case("probe npz ids not in the set", ["probe", "-a", S("wrong_ids.npz"), "-s", stim, "-t", "pitch",
                                              "--group", "stimulus", "--out", out()]),
        *foreign_cases("probe", ["probe", "-a", store, "-s", stim, "-t", "pitch"], overwrite=None),
        # --------------------------------------------------------------------- corpus
        Case("corpus music --n 0", ["corpus", "music", "--n", "0", "--out", out()]),
        Case("corpus music --n -3", ["corpus", "music", "--n", "-3", "--out", out()]),
        Case("corpus music --n abc", ["corpus", "music", "--n", "abc", "--out", out()]),
        Case("corpus music --sample-rate 0", ["corpus", "music", "--n", "1", "--sample-rate", "0", "--out", out()]),
        Case("corpus music --duration -4", ["corpus", "music", "--n", "1", "--duration", "-4", "--out", out()]),
        Case("corpus music unknown preset", ["corpus", "music", "--n", "1", "--preset", "jazzy", "--out", out()]),
        Case("corpus music --pieces-per-shard 0", ["corpus", "music", "--n", "2", "--pieces-per-shard", "0",
                                                   "--out", out()]),
        Case("corpus music --workers 0", ["corpus", "music", "--n", "2", "--workers", "0", "--out", out()]),
        Case("corpus music missing soundfont", ["corpus", "music", "--n", "1", "--soundfont", S("nope.sf2"),
                                                "--out", out()]),
        Case("corpus music 2 pieces at 22.05 kHz (legal)", ["corpus", "music", "--n", "2", "--duration", "2",
                                                            "--sample-rate", "22050", "--out", out()], expect="ok"),
        Case("corpus music same build again (resume)", ["corpus", "music", "--n", "4", "--duration", "4",
                                                        "--pieces-per-shard", "2", "--out", corpus], expect="ok"),
        Case("corpus music other options into a built corpus", ["corpus", "music", "--n", "4", "--seed", "7",
                                                                "--out", corpus], protect=[f["corpus"]]),
        *foreign_cases("corpus music", ["corpus", "music", "--n", "2"], overwrite=None),
        Case("corpus midi one tune (legal)", ["corpus", "midi", S("midi_ok"), "--out", out()], expect="ok"),
        Case("corpus midi missing file", ["corpus", "midi", S("nope.mid"), "--out", out()]),
        Case("corpus midi corrupt file", ["corpus", "midi", S("bad.mid"), "--out", out()]),
        Case("corpus midi corrupt file --skip-bad", ["corpus", "midi", S("bad.mid"), "--skip-bad", "--out", out()]),
        Case("corpus midi no inputs", ["corpus", "midi", "--out", out()]),
        Case("corpus midi empty folder", ["corpus", "midi", S("emptydir"), "--out", out()]),
        Case("corpus midi file without notes", ["corpus", "midi", S("no_notes.mid"), "--out", out()],
             expect="either"),
        Case("corpus midi --limit -1", ["corpus", "midi", S("midi_ok"), "--limit", "-1", "--out", out()]),
        Case("corpus midi unknown music21 corpus", ["corpus", "midi", "--music21", "mozart", "--out", out()]),
        Case("corpus speech 2 utterances (legal)", ["corpus", "speech", "--n", "2", "--text", "bundled",
                                                    "--voices", "en-us", "--out", out()], expect="ok"),
        Case("corpus speech --n -1", ["corpus", "speech", "--n", "-1", "--out", out()]),
        Case("corpus speech unknown voice", ["corpus", "speech", "--n", "1", "--voices", "no-such-voice", "--out", out()]),
        Case("corpus speech unknown text", ["corpus", "speech", "--n", "1", "--text", "poems", "--out", out()]),
        Case("corpus maestro missing root", ["corpus", "maestro", S("nope"), "--out", out()]),
        Case("corpus maestro empty root", ["corpus", "maestro", S("emptydir"), "--out", out()]),
        Case("corpus maestro csv, files missing", ["corpus", "maestro", S("maestro_csv"), "--out", out()]),
        Case("corpus maestro malformed csv", ["corpus", "maestro", S("maestro_badcsv"), "--out", out()]),
        Case("corpus maestro unknown split", ["corpus", "maestro", S("maestro_csv"), "--splits", "dev",
                                              "--out", out()]),
        # --------------------------------------------------------------------- ssm / attention
        Case("ssm mfcc on the corpus (legal)", ["ssm", "-m", "mfcc", "-c", corpus, "--clips", "2", "--no-figures",
                                                "--out", out()], expect="ok"),
        Case("ssm unknown model", ["ssm", "-m", "nosuch", "-c", corpus, "--out", out()]),
        Case("ssm missing corpus", ["ssm", "-m", "mfcc", "-c", S("nope"), "--out", out()]),
        Case("ssm stimulus set as corpus", ["ssm", "-m", "mfcc", "-c", stim, "--out", out()]),
        Case("ssm corpus with corrupt shard", ["ssm", "-m", "mfcc", "-c", S("co_bad_shard"), "--clips", "4",
                                               "--no-figures", "--out", out()]),
        Case("ssm corpus without corpus.json", ["ssm", "-m", "mfcc", "-c", S("co_no_json"), "--out", out()]),
        Case("ssm corpus.json not JSON", ["ssm", "-m", "mfcc", "-c", S("co_bad_json"), "--out", out()]),
        Case("ssm corpus without shards", ["ssm", "-m", "mfcc", "-c", S("co_no_shards"), "--out", out()]),
        Case("ssm --clips 0", ["ssm", "-m", "mfcc", "-c", corpus, "--clips", "0", "--out", out()]),
        Case("ssm --crop -1", ["ssm", "-m", "mfcc", "-c", corpus, "--crop", "-1", "--out", out()]),
        Case("ssm --start past the end", ["ssm", "-m", "mfcc", "-c", corpus, "--start", "100", "--out", out()]),
        Case("ssm --kernel 0", ["ssm", "-m", "mfcc", "-c", corpus, "--kernel", "0", "--out", out()]),
        Case("ssm unknown reference", ["ssm", "-m", "mfcc", "-c", corpus, "--references", "vibes", "--out", out()]),
        Case("ssm unknown method", ["ssm", "-m", "mfcc", "-c", corpus, "--methods", "kendall-ish", "--out", out()]),
        Case("ssm unknown resample", ["ssm", "-m", "mfcc", "-c", corpus, "--resample", "cubic", "--out", out()]),
        Case("ssm HF malicious pickle", ["ssm", "-m", S("hf_pickle"), "-c", corpus, "--out", out()]),
        *foreign_cases("ssm", ["ssm", "-m", "mfcc", "-c", corpus, "--clips", "2"], overwrite=None),
        Case("attention trained vit1d, 1 s crops (legal)", ["attention", "-m", bb, "-c", corpus, "--clips", "2",
                                                            "--crop", "1.0", "--no-figures", "--out", out()],
             expect="ok"),
        Case("attention whole pieces exceed max_frames", ["attention", "-m", bb, "-c", corpus, "--clips", "2",
                                                          "--no-figures", "--out", out()]),
        Case("attention model without attention (mfcc)", ["attention", "-m", "mfcc", "-c", corpus, "--out", out()]),
        Case("attention missing corpus", ["attention", "-m", bb, "-c", S("nope"), "--out", out()]),
        Case("attention --window -1", ["attention", "-m", bb, "-c", corpus, "--crop", "1.0", "--window", "-1",
                                       "--out", out()]),
        Case("attention checkpoint malicious model.pt", ["attention", "-m", S("ckpt_evil"), "-c", corpus,
                                                         "--out", out()]),
        *foreign_cases("attention", ["attention", "-m", bb, "-c", corpus, "--clips", "2", "--crop", "1.0"],
                       overwrite=None),
        # --------------------------------------------------------------------- train
        Case("train same config again (finished; legal)", ["train", "ntxent", "--config", str(f["train_cfg"]),
                                                           "--out", str(f["trainrun"])], expect="ok"),
        Case("train resume from a malicious last.ckpt", ["train", "ntxent", "--config", str(f["train_cfg"]),
                                                         "--out", S("trainrun_evil")]),
        Case("train missing config", ["train", "ntxent", "--config", S("nope.yaml"), "--out", out()]),
        Case("train config with python tag", ["train", "ntxent", "--config", S("tc_tag.yaml"), "--out", out()]),
        Case("train unknown section", ["train", "ntxent", "--config", S("tc_unknown_key.yaml"), "--out", out()]),
        Case("train lr: fast", ["train", "ntxent", "--config", S("tc_lr_str.yaml"), "--out", out()]),
        Case("train max_steps: -1", ["train", "ntxent", "--config", S("tc_neg_steps.yaml"), "--out", out()]),
        Case("train one validation piece for NT-Xent", ["train", "ntxent", "--config", S("tc_val_one.yaml"),
                                                        "--out", out()]),
        Case("train missing corpus", ["train", "ntxent", "--config", S("tc_no_corpus.yaml"), "--out", out()]),
        Case("train stimulus set as corpus", ["train", "ntxent", "--config", S("tc_stim_as_corpus.yaml"),
                                              "--out", out()]),
        Case("train corrupt corpus shard", ["train", "ntxent", "--config", S("tc_bad_corpus.yaml"), "--out", out()]),
        Case("train unknown model family", ["train", "ntxent", "--config", S("tc_family.yaml"), "--out", out()]),
        Case("train crop longer than every piece (padded)", ["train", "ntxent", "--config", S("tc_crop_long.yaml"),
                                                             "--out", out()], expect="either"),
        Case("train --set python tag", ["train", "ntxent", "--config", str(f["train_cfg"]), "--set",
                                        f"seed=!!python/object/apply:os.system ['touch {f['pwned']}']",
                                        "--out", out()]),
        Case("train other config into a finished run", ["train", "ntxent", "--config", S("tc_val_big.yaml"),
                                                        "--set", "data.val=0.5", "--set", "optim.lr=0.01",
                                                        "--out", str(f["trainrun"])], protect=[f["trainrun"]]),
        *foreign_cases("train", ["train", "ntxent", "--config", str(f["train_cfg"])]),
        # --------------------------------------------------------------------- run (studies)
        Case("run tiny study, 2 octaves (legal)", ["run", S("sy_ok.yaml"), "--out", out()], expect="ok"),
        Case("run tiny study, 13 pitches (legal)", ["run", S("sy_ok_13.yaml"), "--out", out()], expect="ok"),
        Case("run study n_permutations: many", ["run", S("sy_many.yaml"), "--out", out()]),
        Case("run study n_bootstraps: -5", ["run", S("sy_negcount.yaml"), "--out", out()]),
        Case("run study unknown network model", ["run", S("sy_badnet.yaml"), "--out", out()]),
        Case("run study misspelt model RDM", ["run", S("sy_badrdm.yaml"), "--out", out()]),
        Case("run study unknown rsa key", ["run", S("sy_rsa_key.yaml"), "--out", out()]),
        Case("run study unknown section", ["run", S("sy_top_key.yaml"), "--out", out()]),
        Case("run study unknown network key", ["run", S("sy_net_key.yaml"), "--out", out()]),
        Case("run study unknown step", ["run", S("sy_badstep.yaml"), "--out", out()]),
        Case("run study unknown distance", ["run", S("sy_distance.yaml"), "--out", out()]),
        Case("run study midi: 60-abc", ["run", S("sy_midi_str.yaml"), "--out", out()]),
        Case("run study one note (too few stimuli)", ["run", S("sy_one_note.yaml"), "--out", out()]),
        Case("run study unknown instrument", ["run", S("sy_instr.yaml"), "--out", out()]),
        Case("run study no networks", ["run", S("sy_no_nets.yaml"), "--out", out()]),
        Case("run study negative sample_rate", ["run", S("sy_rate_neg.yaml"), "--out", out()]),
        Case("run study duration_s: long", ["run", S("sy_dur_str.yaml"), "--out", out()]),
        Case("run study negative corpus size", ["run", S("sy_badcorpus.yaml"), "--out", out()]),
        Case("run study network trained by unknown condition", ["run", S("sy_trained_missing.yaml"), "--out", out()]),
        Case("run study alpha: 5", ["run", S("sy_alpha.yaml"), "--out", out()]),
        Case("run study YAML syntax error", ["run", S("sy_syntax.yaml"), "--out", out()]),
        Case("run study empty file", ["run", S("sy_empty.yaml"), "--out", out()]),
        Case("run study a list", ["run", S("sy_list.yaml"), "--out", out()]),
        Case("run study with python tag", ["run", S("sy_tag.yaml"), "--out", out()]),
        Case("run missing study file", ["run", S("nope.yaml"), "--out", out()]),
        Case("run unknown study name", ["run", "no-such-study", "--out", out()]),
        Case("run unknown scale", ["run", "chroma-baselines", "--scale", "nosuch", "--out", out()]),
        Case("run other study into a finished run", ["run", S("sy_ok.yaml"), "--out", str(f["studyrun"])],
             expect="either"),
        *foreign_cases("run", ["run", S("sy_ok.yaml")], overwrite=None),
        # --------------------------------------------------------------------- report
        Case("report on a stimuli-only run (legal)", ["report", str(f["studyrun"])], expect="either"),
        Case("report on a run with a python-tag config", ["report", S("studyrun_tag")]),
        Case("report on a foreign folder", ["report", str(fr_report)], protect=[fr_report]),
        Case("report on a training run", ["report", str(f["trainrun"])], protect=[f["trainrun"]]),
        Case("report missing folder", ["report", S("nope")]),
        Case("report on a file", ["report", str(a_file)], protect=[a_file]),
        Case("report on a read-only place", ["report", ro]),
    ]
    return c


# ---------------------------------------------------------------------------------------------- classify

def _inputs(case: Case, tmp: Path) -> list[Path]:
    """Existing paths on the command line other than --out: musiclens must leave them alone."""
    o = _out_of(case.args)
    paths = []
    for a in case.args[1:]:
        if a == o or not a.startswith(str(tmp)) or case.args[0] == "report":
            continue
        p = Path(a)
        if p.exists() and p != tmp:
            paths.append(p)
    return paths


def classify(case: Case, proc: subprocess.CompletedProcess | None, before: dict[str, str], tmp: Path,
             marker: Path, out_existed: bool) -> tuple[str, str]:
    if marker.exists():
        marker.unlink()
        return "destroyed", "code from a model, pickle or YAML file ran (marker file appeared)"
    after = _snapshot(case.protect + _inputs(case, tmp))
    if after != before:
        return "destroyed", f"a file musiclens did not write changed ({_diff(before, after)})"
    if proc is None:
        return "timeout", ""
    text = proc.stderr + "\n" + proc.stdout
    lines = _lines(proc.stderr)
    err_line = next((x for x in lines if x.startswith("error:")), None)
    extra = ""
    if err_line is None:   # "error:" printed on the line of an unfinished progress bar
        glued = next((x for x in lines if "]error: " in x), None)
        if glued is not None:
            err_line, extra = "error: " + glued.split("]error: ", 1)[1], " [error: glued to a progress bar]"
    usage = proc.returncode == 2 and "Usage:" in text and ("Error" in text) and err_line is None
    if usage:   # the argument parser's own refusal (rich box): the message is inside the box
        box = [x.strip("│ ").strip() for x in lines if x.startswith("│")]
        err_line = "usage error: " + " ".join(box)
    tb = "Traceback (most recent call last)" in text
    last = lines[-1] if lines else f"exit {proc.returncode}"
    if tb:
        exc = next((x for x in reversed(lines) if _EXC.match(x)), last)
        return "traceback", exc[:200]
    if proc.returncode == 0:
        if case.expect == "error":
            return "silent", ("exit 0: " + (_lines(proc.stdout)[-1] if proc.stdout.strip() else last))[:200]
        symptom = case.verify() if case.verify else None
        return ("silent", symptom[:200]) if symptom else ("ok_expected", "")
    if proc.returncode != 2 or err_line is None:
        return "traceback", f"exit {proc.returncode}: {last}"[:200]
    if case.expect == "ok":
        return "traceback", f"refused a legal input: {err_line}"[:200]
    o = _out_of(case.args)
    if o and o.startswith(str(tmp)) and Path(o).is_dir() and not any(p == Path(o) for p in case.protect):
        left = sorted(p.name for p in Path(o).iterdir() if p.name != ".musiclens.json")
        if left and not out_existed:
            extra += f" [after writing {', '.join(left[:4])}]"
    return "clean_error", (err_line[:200 - len(extra)] + extra)


# -------------------------------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, default=HERE, help="source tree whose src/ is imported (default: this one)")
    ap.add_argument("--python", default=sys.executable, help="interpreter with musiclens's dependencies")
    ap.add_argument("--csv", type=Path, help="write the per-case table here")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per case (default 120)")
    ap.add_argument("--only", help="run only cases whose name or command contains this text")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    a = ap.parse_args()
    src = a.src.resolve()
    tmp = Path(tempfile.mkdtemp(prefix="musiclens-bad-inputs-"))
    r = Runner(a.python, src, tmp, a.timeout)
    where = r.imported_from()
    if not Path(where).resolve().is_relative_to(src / "src"):
        raise SystemExit(f"PYTHONPATH={src / 'src'} imports musiclens from {where}, not from {src}; aborting")
    print(f"musiclens imported from {where}", flush=True)
    try:
        start = time.monotonic()
        f = fixtures(r)
        print(f"fixtures built in {time.monotonic() - start:.0f} s in {tmp}", flush=True)
        rows = []
        all_cases = cases(tmp, f)
        names = [c.name for c in all_cases]
        dupes = {x for x in names if names.count(x) > 1}
        assert not dupes, dupes
        for case in all_cases:
            if a.only and a.only not in case.name and a.only != case.args[0]:
                continue
            if f["pwned"].exists():
                f["pwned"].unlink()
            before = _snapshot(case.protect + _inputs(case, tmp))
            o = _out_of(case.args)
            out_existed = bool(o) and Path(o).exists()
            proc, secs = r.run(case.args)
            cls, detail = classify(case, proc, before, tmp, f["pwned"], out_existed)
            cmd = " ".join(case.args[:2]) if case.args[0] in ("stimuli", "corpus") else case.args[0]
            rows.append({"case": case.name, "command": cmd, "expect": case.expect, "class": cls,
                         "seconds": f"{secs:.1f}", "detail": detail,
                         "argv": "musiclens " + " ".join(x.replace(str(tmp), "$TMP") for x in case.args)})
            print(f"{cls:12s} {cmd:18s} {case.name:50s} {detail}", flush=True)
        counts = Counter(row["class"] for row in rows)
        print(f"\n{len(rows)} cases in {time.monotonic() - start:.0f} s, musiclens from {src}:")
        for cls in CLASSES:
            print(f"  {cls:12s} {counts.get(cls, 0)}")
        if a.csv:
            with open(a.csv, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
            print(f"table: {a.csv}")
    finally:
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(RO_OUT, ignore_errors=True)
        for p in RO_OUT.parent.glob(f".{RO_OUT.name}*"):
            shutil.rmtree(p, ignore_errors=True)


if __name__ == "__main__":
    main()
