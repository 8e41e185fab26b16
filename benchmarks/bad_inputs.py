"""Throw bad and edge inputs at every musiclens command and count how each one ends.

Not a test: a measuring script, run before and after a change to count failure classes.

    python benchmarks/bad_inputs.py                       # the checkout this file is in
    python benchmarks/bad_inputs.py --src /path/to/other  # another source tree (PYTHONPATH=<src>/src)
    python benchmarks/bad_inputs.py --csv out.csv

Each case runs ``python -m musiclens ...`` in a subprocess and ends in exactly one class:

``clean_error``  exit 2 with an ``error:`` line and no traceback (what a bad input should get);
``late_error``   a clean error, but only after work started (the output folder was written);
``traceback``    a Python traceback, or another non-zero exit without an ``error:`` line;
``silent``       exit 0 although the input was bad;
``destroyed``    a file or folder musiclens did not write was changed or deleted, or code from a
                 model or config file ran (overrides the other classes);
``ok_expected``  exit 0 where success is right (legal edge inputs);
``timeout``      still running after the limit.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    name: str
    args: list[str]
    expect: str = "error"                       # "error" or "ok"
    protect: list[Path] = field(default_factory=list)
    marker: Path | None = None                  # must not exist afterwards (code execution)
    no_work: Path | None = None                 # must not exist (or stay empty) after an error


def _snapshot(paths: list[Path]) -> dict[str, str]:
    out = {}
    for root in paths:
        if root.is_file():
            out[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
        elif root.is_dir():
            for p in sorted(root.rglob("*")):
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        else:
            out[str(root)] = "absent"
    return out


def _foreign(path: Path) -> Path:
    (path / "sub").mkdir(parents=True, exist_ok=True)
    (path / "rsa.csv").write_text("my own numbers\n")
    (path / "sub" / "notes.txt").write_text("keep me\n")
    return path


class Runner:
    def __init__(self, src: Path, tmp: Path, timeout: float) -> None:
        self.env = dict(os.environ, PYTHONPATH=str(src / "src"), OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
        self.tmp, self.timeout = tmp, timeout

    def run(self, args: list[str]) -> subprocess.CompletedProcess | None:
        try:
            return subprocess.run([sys.executable, "-m", "musiclens", *args], capture_output=True, text=True,
                                  env=self.env, timeout=self.timeout, cwd=self.tmp)
        except subprocess.TimeoutExpired:
            return None

    def must(self, args: list[str]) -> None:
        proc = self.run(args)
        if proc is None or proc.returncode != 0:
            raise SystemExit(f"fixture command failed: {args}\n{proc.stderr[-2000:] if proc else 'timeout'}")


def fixtures(r: Runner) -> dict[str, Path]:
    t = r.tmp
    f: dict[str, Path] = {}
    f["stim"] = t / "stim"
    r.must(["stimuli", "notes", "--out", str(f["stim"]), "--grid", "quick", "--instruments", "flute,0",
            "--midi", "60-72", "--duration", "0.5", "--hold", "0.3"])
    f["stim1"] = t / "stim1"
    r.must(["stimuli", "notes", "--out", str(f["stim1"]), "--grid", "quick", "--instruments", "flute",
            "--midi", "60-84", "--duration", "0.5", "--hold", "0.3"])
    f["store1"] = t / "store1"
    r.must(["extract", "-m", "mfcc", "-s", str(f["stim1"]), "--out", str(f["store1"])])
    f["store"] = t / "store"
    r.must(["extract", "-m", "mfcc", "-s", str(f["stim"]), "--out", str(f["store"])])
    meta = __import__("pandas").read_parquet(next(f["stim"].glob("metadata.*"))) if any(
        f["stim"].glob("metadata.parquet")) else __import__("pandas").read_csv(f["stim"] / "metadata.csv")
    ids = meta["stimulus_id"].astype(str).to_numpy()
    rng = np.random.default_rng(0)
    acts = {"layer_00": rng.normal(size=(len(ids), 8)), "layer_01": rng.normal(size=(len(ids), 8))}
    np.savez(t / "ids.npz", stimulus_id=ids, **acts)
    np.savez(t / "no_ids.npz", **acts)
    nan = {k: v.copy() for k, v in acts.items()}
    nan["layer_01"][3, 2] = np.nan
    np.savez(t / "nan.npz", stimulus_id=ids, **nan)
    perm = rng.permutation(len(ids))
    np.savez(t / "shuffled.npz", stimulus_id=ids[perm], **{k: v[perm] for k, v in acts.items()})
    np.savez(t / "short.npz", stimulus_id=ids[:-2], **{k: v[:-2] for k, v in acts.items()})
    np.savez(t / "empty.npz", stimulus_id=ids)
    # damaged stimulus sets
    for name in ("corrupt_wav", "no_ids_meta", "no_rate"):
        shutil.copytree(f["stim"], t / name)
    wav = sorted((t / "corrupt_wav" / "audio").glob("*.wav"))[0]
    wav.write_bytes(b"RIFF....garbage")
    mfile = next(p for p in (t / "no_ids_meta").iterdir() if p.name.startswith("metadata."))
    if mfile.suffix == ".parquet":
        import pandas as pd

        pd.read_parquet(mfile).drop(columns=["stimulus_id"]).to_parquet(mfile, index=False)
    else:
        import pandas as pd

        pd.read_csv(mfile).drop(columns=["stimulus_id"]).to_csv(mfile, index=False)
    m = json.loads((t / "no_rate" / "manifest.json").read_text())
    m.pop("sample_rate")
    (t / "no_rate" / "manifest.json").write_text(json.dumps(m))
    # Hugging Face directories
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    cfg = Wav2Vec2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                         conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16,
                         num_conv_pos_embedding_groups=2, do_stable_layer_norm=True, feat_extract_norm="layer")
    Wav2Vec2Model(cfg).save_pretrained(t / "hf_missing")
    state = load_file(t / "hf_missing" / "model.safetensors")
    save_file({k: v for k, v in state.items() if "layers.1.attention.k_proj" not in k},
              t / "hf_missing" / "model.safetensors", metadata={"format": "pt"})
    Wav2Vec2Model(cfg).save_pretrained(t / "hf_pickle")
    (t / "hf_pickle" / "model.safetensors").unlink()
    f["pwned"] = t / "pwned.txt"

    class Payload:
        def __reduce__(self):  # noqa: ANN204
            return (os.system, (f"touch {f['pwned']}",))

    with open(t / "hf_pickle" / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"w": Payload()}, fh)
    # configs and studies
    (t / "tag.yaml").write_text(f"objective: ntxent\nseed: !!python/object/apply:os.system ['touch {f['pwned']}']\n")
    (t / "unknown_key.yaml").write_text("objective: ntxent\noptimm: {lr: 0.1}\n")
    (t / "neg.yaml").write_text("objective: ntxent\noptim: {max_steps: -1}\ndata: {train: [nowhere]}\n")
    (t / "nodata.yaml").write_text("objective: ntxent\ndata: {train: [/nonexistent/corpus]}\n")
    base = {"study": {"name": "bad"}, "stimuli": {"grid": "quick", "instruments": ["flute"], "midi": [60, 61, 72]},
            "networks": {"mfcc": {"model": "mfcc"}}, "steps": {"run": ["stimuli", "extract", "rsa"]}}

    def study(name: str, **patch: dict) -> None:  # noqa: ANN003
        import yaml

        s = json.loads(json.dumps(base))
        for sec, val in patch.items():
            s.setdefault(sec, {}).update(val)
        (t / f"{name}.yaml").write_text(yaml.safe_dump(s))

    study("many", rsa={"n_permutations": "many"})
    study("badnet", networks={"mfcc": {"model": "no-such-net"}})
    study("badrdm", rsa={"models": ["pitch_height", "chromaa"]})
    study("negcount", rsa={"n_bootstraps": -5})
    study("badcorpus", corpora={"c": {"kind": "music", "n": -1}}, steps={"run": ["corpora", "stimuli"]})
    (t / "tagstudy.yaml").write_text(f"study: !!python/object/apply:os.system ['touch {f['pwned']}']\n")
    (t / "bad.mid").write_bytes(b"MThd not really midi")
    (t / "emptydir").mkdir()
    (t / "a_file.txt").write_text("not a folder\n")
    return f


def cases(t: Path, f: dict[str, Path]) -> list[Case]:
    stim, store, pw = str(f["stim"]), str(f["store"]), f["pwned"]
    fr = lambda n: _foreign(t / f"foreign_{n}")  # noqa: E731
    a_file = t / "a_file.txt"
    ro = "/sys/kernel/musiclens-bad-input"
    out = lambda n: str(t / f"out_{n}")  # noqa: E731
    c = [
        # stimuli
        Case("notes midi 60-abc", ["stimuli", "notes", "--midi", "60-abc", "--out", out(1)]),
        Case("notes velocities loud", ["stimuli", "notes", "--velocities", "loud", "--out", out(2)]),
        Case("notes unknown instrument", ["stimuli", "notes", "--instruments", "kazoo", "--midi", "60", "--out", out(3)]),
        Case("notes negative duration", ["stimuli", "notes", "--midi", "60", "--duration", "-1", "--out", out(4)]),
        Case("notes sample rate 0", ["stimuli", "notes", "--midi", "60", "--sample-rate", "0", "--out", out(5)]),
        Case("notes unknown grid", ["stimuli", "notes", "--grid", "nosuch", "--out", out(6)]),
        Case("notes midi out of range", ["stimuli", "notes", "--instruments", "flute", "--midi", "20", "--out", out(7)]),
        Case("notes out is a file", ["stimuli", "notes", "--midi", "60", "--out", str(a_file)], protect=[a_file]),
        Case("notes out foreign", ["stimuli", "notes", "--midi", "60", "--out", str(fr(1))], protect=[t / "foreign_1"]),
        Case("notes out foreign overwrite", ["stimuli", "notes", "--midi", "60", "--overwrite", "--out", str(fr(2))],
             protect=[t / "foreign_2"]),
        Case("notes out read-only", ["stimuli", "notes", "--midi", "60", "--out", ro]),
        Case("nsynth missing root", ["stimuli", "nsynth", str(t / "nope"), "--out", out(8)]),
        Case("nsynth empty root", ["stimuli", "nsynth", str(t / "emptydir"), "--out", out(9)]),
        # extract
        Case("extract unknown model", ["extract", "-m", "nosuch", "-s", stim, "--out", out(10)]),
        Case("extract missing stimuli", ["extract", "-m", "mfcc", "-s", str(t / "nope"), "--out", out(11)]),
        Case("extract out foreign", ["extract", "-m", "mfcc", "-s", stim, "--out", str(fr(3))], protect=[t / "foreign_3"]),
        Case("extract out foreign overwrite", ["extract", "-m", "mfcc", "-s", stim, "--overwrite", "--out", str(fr(4))],
             protect=[t / "foreign_4"]),
        Case("extract out is a file", ["extract", "-m", "mfcc", "-s", stim, "--out", str(a_file)], protect=[a_file]),
        Case("extract out read-only", ["extract", "-m", "mfcc", "-s", stim, "--out", ro]),
        Case("extract bad pooling", ["extract", "-m", "mfcc", "-s", stim, "--pooling", "weird", "--out", out(12)]),
        Case("extract bad layer", ["extract", "-m", "mfcc", "-s", stim, "--layers", "99", "--out", out(13)]),
        Case("extract corrupt wav", ["extract", "-m", "mfcc", "-s", str(t / "corrupt_wav"), "--out", out(14)]),
        Case("extract manifest without sample_rate", ["extract", "-m", "mfcc", "-s", str(t / "no_rate"), "--out", out(15)]),
        Case("extract metadata without stimulus_id", ["extract", "-m", "mfcc", "-s", str(t / "no_ids_meta"), "--out", out(16)]),
        Case("extract batch size 0", ["extract", "-m", "mfcc", "-s", stim, "--batch-size", "0", "--out", out(17)]),
        Case("extract HF missing tensors", ["extract", "-m", str(t / "hf_missing"), "-s", stim, "--out", out(18)]),
        Case("extract HF malicious pickle", ["extract", "-m", str(t / "hf_pickle"), "-s", stim, "--out", out(19)],
             marker=pw),
        # rsa
        Case("rsa npz without ids", ["rsa", "-a", str(t / "no_ids.npz"), "-s", stim, "--out", out(20)]),
        Case("rsa npz with NaN", ["rsa", "-a", str(t / "nan.npz"), "-s", stim, "--out", out(21)]),
        Case("rsa shuffled rows with ids", ["rsa", "-a", str(t / "shuffled.npz"), "-s", stim, "--out", out(22)]),
        Case("rsa too few rows", ["rsa", "-a", str(t / "short.npz"), "-s", stim, "--out", out(23)]),
        Case("rsa npz with no layers", ["rsa", "-a", str(t / "empty.npz"), "-s", stim, "--out", out(24)]),
        Case("rsa misspelt model RDM", ["rsa", "-a", store, "-s", stim, "--models", "chromaa", "--out", out(25)]),
        Case("rsa unknown method", ["rsa", "-a", store, "-s", stim, "--method", "nosuch", "--out", out(26)]),
        Case("rsa negative permutations", ["rsa", "-a", store, "-s", stim, "--permutations", "-5", "--out", out(27)]),
        Case("rsa bad bootstrap-over", ["rsa", "-a", store, "-s", stim, "--bootstrap-over", "nope", "--out", out(28)]),
        Case("rsa out foreign", ["rsa", "-a", store, "-s", stim, "--out", str(fr(5))], protect=[t / "foreign_5"]),
        Case("rsa out is a file", ["rsa", "-a", store, "-s", stim, "--out", str(a_file)], protect=[a_file]),
        Case("rsa out read-only", ["rsa", "-a", store, "-s", stim, "--out", ro]),
        Case("rsa metadata without stimulus_id", ["rsa", "-a", store, "-s", str(t / "no_ids_meta"), "--out", out(29)]),
        Case("rsa missing activations", ["rsa", "-a", str(t / "nope.npz"), "-s", stim, "--out", out(30)]),
        Case("rsa one subject, permutation test", ["rsa", "-a", str(f["store1"]), "-s", str(f["stim1"]), "--test",
                                                   "permutation", "--permutations", "50", "--bootstraps", "20",
                                                   "--bootstrap-over", "pitches", "--out", out(31)], expect="ok"),
        # train
        Case("train missing config", ["train", "ntxent", "--config", str(t / "nope.yaml"), "--out", out(32)]),
        Case("train config with python tag", ["train", "ntxent", "--config", str(t / "tag.yaml"), "--out", out(33)],
             marker=pw),
        Case("train config unknown key", ["train", "ntxent", "--config", str(t / "unknown_key.yaml"), "--out", out(34)]),
        Case("train negative max_steps", ["train", "ntxent", "--config", str(t / "neg.yaml"), "--out", out(35)]),
        Case("train missing corpus", ["train", "ntxent", "--config", str(t / "nodata.yaml"), "--out", out(36)]),
        Case("train unknown objective", ["train", "nosuch", "--config", str(t / "nodata.yaml"), "--out", out(37)]),
        Case("train out foreign", ["train", "ntxent", "--config", str(t / "nodata.yaml"), "--out", str(fr(6))],
             protect=[t / "foreign_6"]),
        Case("train out is a file", ["train", "ntxent", "--config", str(t / "nodata.yaml"), "--out", str(a_file)],
             protect=[a_file]),
        # studies
        Case("run n_permutations: many", ["run", str(t / "many.yaml"), "--out", out(38)], no_work=t / "out_38"),
        Case("run unknown network model", ["run", str(t / "badnet.yaml"), "--out", out(39)], no_work=t / "out_39"),
        Case("run misspelt model RDM", ["run", str(t / "badrdm.yaml"), "--out", out(40)], no_work=t / "out_40"),
        Case("run negative count", ["run", str(t / "negcount.yaml"), "--out", out(41)], no_work=t / "out_41"),
        Case("run negative corpus size", ["run", str(t / "badcorpus.yaml"), "--out", out(42)], no_work=t / "out_42"),
        Case("run study with python tag", ["run", str(t / "tagstudy.yaml"), "--out", out(43)], marker=pw),
        Case("run unknown study", ["run", "no-such-study", "--out", out(44)]),
        Case("run unknown scale", ["run", "chroma-baselines", "--scale", "nosuch", "--out", out(45)]),
        Case("run out foreign", ["run", "chroma-baselines", "--out", str(fr(7))], protect=[t / "foreign_7"]),
        # probe
        Case("probe missing activations", ["probe", "-a", str(t / "nope"), "-s", stim, "-t", "pitch", "--out", out(46)]),
        Case("probe unknown task", ["probe", "-a", store, "-s", stim, "-t", "nosuch", "--out", out(47)]),
        Case("probe out foreign", ["probe", "-a", store, "-s", stim, "-t", "pitch", "--out", str(fr(8))],
             protect=[t / "foreign_8"]),
        # corpus
        Case("corpus music n 0", ["corpus", "music", "--n", "0", "--out", out(48)]),
        Case("corpus midi missing file", ["corpus", "midi", str(t / "nope.mid"), "--out", out(49)]),
        Case("corpus midi corrupt file", ["corpus", "midi", str(t / "bad.mid"), "--out", out(50)]),
        Case("corpus maestro missing root", ["corpus", "maestro", str(t / "nope"), "--out", out(51)]),
        Case("corpus music out foreign", ["corpus", "music", "--n", "2", "--out", str(fr(9))], protect=[t / "foreign_9"]),
        # attention / ssm / report
        Case("ssm unknown model", ["ssm", "--model", "nosuch", "--corpus", str(t / "nope"), "--out", out(52)]),
        Case("attention missing corpus", ["attention", "--model", "vit1d", "--corpus", str(t / "nope"), "--out", out(53)]),
        Case("ssm out is a file", ["ssm", "--model", "mfcc", "--corpus", str(t / "nope"), "--out", str(a_file)],
             protect=[a_file]),
        Case("report on a foreign folder", ["report", str(fr(10))], protect=[t / "foreign_10"]),
        Case("report missing folder", ["report", str(t / "nope")]),
    ]
    return c


def classify(case: Case, proc: subprocess.CompletedProcess | None, before: dict[str, str]) -> tuple[str, str]:
    if case.marker is not None and case.marker.exists():
        case.marker.unlink()
        return "destroyed", "code from a file ran"
    if case.protect and _snapshot(case.protect) != before:
        return "destroyed", "a folder or file musiclens did not write changed"
    if proc is None:
        return "timeout", ""
    err = proc.stderr.strip().splitlines()
    line = next((x for x in err if x.startswith("error:")), err[-1] if err else "")
    if proc.returncode == 0:
        return ("ok_expected" if case.expect == "ok" else "silent"), line[:160]
    if "Traceback" in proc.stderr or not any(x.startswith("error:") for x in err):
        return "traceback", (err[-1] if err else f"exit {proc.returncode}")[:160]
    if case.expect == "ok":
        return "traceback", line[:160]
    if case.no_work is not None and case.no_work.exists() and any(
            p.name not in (".musiclens.json",) for p in case.no_work.iterdir()):
        return "late_error", line[:160]
    return "clean_error", line[:160]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, default=HERE, help="source tree whose src/ is imported (default: this one)")
    ap.add_argument("--csv", type=Path, help="write the per-case table here")
    ap.add_argument("--timeout", type=float, default=180.0)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="musiclens-bad-inputs-"))
    try:
        r = Runner(a.src.resolve(), tmp, a.timeout)
        start = time.monotonic()
        f = fixtures(r)
        rows = []
        for case in cases(tmp, f):
            before = _snapshot(case.protect)
            proc = r.run(case.args)
            cls, detail = classify(case, proc, before)
            rows.append({"case": case.name, "command": case.args[0], "class": cls, "detail": detail})
            print(f"{cls:12s} {case.name:40s} {detail}", flush=True)
        counts = Counter(row["class"] for row in rows)
        print(f"\n{len(rows)} cases in {time.monotonic() - start:.0f} s from {a.src}:")
        for cls in ("clean_error", "ok_expected", "late_error", "traceback", "silent", "destroyed", "timeout"):
            print(f"  {cls:12s} {counts.get(cls, 0)}")
        if a.csv:
            with open(a.csv, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree("/sys/kernel/musiclens-bad-input", ignore_errors=True)


if __name__ == "__main__":
    main()
