"""Fixtures of ``bad_inputs.py``: the small valid inputs each bad case is derived from (a note set,
feature stores, .npz files, corpora, Hugging Face directories, configs and studies), built with
the source tree under test.  Not a test module; imported by the script beside it."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np



def _yaml(path: Path, data: object) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _foreign(path: Path) -> Path:
    """A folder that musiclens did not make, holding someone's own files."""
    (path / "sub").mkdir(parents=True, exist_ok=True)
    (path / "rsa.csv").write_text("my own numbers\n")
    (path / "config.yaml").write_text("mine: true\n")
    (path / "sub" / "notes.txt").write_text("keep me\n")
    return path


def _meta_file(stim: Path) -> Path:
    return next(p for p in stim.iterdir() if p.name.startswith("metadata."))


def _read_meta(stim: Path):  # noqa: ANN202
    import pandas as pd

    f = _meta_file(stim)
    return pd.read_parquet(f) if f.suffix == ".parquet" else pd.read_csv(f)


def _write_meta(stim: Path, meta) -> None:  # noqa: ANN001
    f = _meta_file(stim)
    meta.to_parquet(f, index=False) if f.suffix == ".parquet" else meta.to_csv(f, index=False)


def _edit_manifest(stim: Path, fn: Callable[[dict], None]) -> None:
    m = json.loads((stim / "manifest.json").read_text())
    fn(m)
    (stim / "manifest.json").write_text(json.dumps(m, indent=1))


def _unhash(m: dict) -> None:
    """Drop the hashes, as a hand-edited set would (so the damage itself is what gets read)."""
    m.pop("clip_hashes", None)
    m.pop("content_hash", None)


# ---------------------------------------------------------------------------------------------- fixtures

def fixtures(r: Runner) -> dict[str, Path]:  # noqa: PLR0915
    import soundfile as sf

    t = r.tmp
    f: dict[str, Path] = {"pwned": t / "pwned.txt"}
    pw = f["pwned"]
    note = ["--grid", "quick", "--duration", "0.5", "--hold", "0.3"]
    # stimulus sets: the brief's 26-note set, a 25-note one-instrument set, a 2-note set
    f["stim"] = t / "stim"
    r.must(["stimuli", "notes", "--out", str(f["stim"]), "--instruments", "flute,0", "--midi", "60-72", *note])
    f["stim1"] = t / "stim1"
    r.must(["stimuli", "notes", "--out", str(f["stim1"]), "--instruments", "flute", "--midi", "60-84", *note])
    f["stim2"] = t / "stim2"
    r.must(["stimuli", "notes", "--out", str(f["stim2"]), "--instruments", "flute", "--midi", "60,72", *note])
    f["store"] = t / "store"
    r.must(["extract", "-m", "mfcc", "-s", str(f["stim"]), "--out", str(f["store"])])
    f["store1"] = t / "store1"
    r.must(["extract", "-m", "mfcc", "-s", str(f["stim1"]), "--out", str(f["store1"])])
    f["store2"] = t / "store2"
    r.must(["extract", "-m", "mfcc", "-s", str(f["stim2"]), "--out", str(f["store2"])])
    # hand-made .npz activations
    meta = _read_meta(f["stim"])
    ids = meta["stimulus_id"].astype(str).to_numpy().astype("U")   # a unicode array: loads without pickle
    rng = np.random.default_rng(0)
    acts = {"layer_00": rng.normal(size=(len(ids), 8)), "layer_01": rng.normal(size=(len(ids), 8))}
    np.savez(t / "ids.npz", stimulus_id=ids, **acts)
    np.savez(t / "no_ids.npz", **acts)
    nan = {k: v.copy() for k, v in acts.items()}
    nan["layer_01"][3, 2] = np.nan
    np.savez(t / "nan.npz", stimulus_id=ids, **nan)
    inf = {k: v.copy() for k, v in acts.items()}
    inf["layer_00"][0, 0] = np.inf
    np.savez(t / "inf.npz", stimulus_id=ids, **inf)
    perm = rng.permutation(len(ids))
    np.savez(t / "shuffled.npz", stimulus_id=ids[perm], **{k: v[perm] for k, v in acts.items()})
    np.savez(t / "shuffled_no_ids.npz", **{k: v[perm] for k, v in acts.items()})
    np.savez(t / "short.npz", stimulus_id=ids[:-2], **{k: v[:-2] for k, v in acts.items()})
    np.savez(t / "short_no_ids.npz", **{k: v[:-2] for k, v in acts.items()})
    wrong = ids.copy()
    wrong[:5] = np.array([f"nosuch-{i}" for i in range(5)])
    np.savez(t / "wrong_ids.npz", stimulus_id=wrong, **acts)
    dup = ids.copy()
    dup[1] = dup[0]
    np.savez(t / "dup_ids.npz", stimulus_id=dup, **acts)
    np.savez(t / "int_ids.npz", stimulus_id=np.arange(len(ids)), **acts)
    np.savez(t / "ids_only.npz", stimulus_id=ids)
    np.savez(t / "ragged.npz", stimulus_id=ids, layer_00=acts["layer_00"], layer_01=acts["layer_01"][:-1])
    np.savez(t / "vector.npz", stimulus_id=ids, layer_00=acts["layer_00"][:, 0])
    np.savez(t / "const.npz", stimulus_id=ids, layer_00=np.ones((len(ids), 8)))
    np.savez(t / "strings.npz", stimulus_id=ids, layer_00=np.array([["a"] * 8] * len(ids)))
    with open(t / "pickled.npz", "wb") as fh:  # an .npz whose layer is an object array (pickle inside)
        np.savez(fh, stimulus_id=ids, layer_00=np.array([{"x": 1}] * len(ids), dtype=object))
    (t / "garbage.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    (t / "empty_file.npz").write_bytes(b"")
    # damaged copies of the stimulus set
    stim = f["stim"]
    wavs = sorted((stim / "audio").glob("*.wav"))

    def copy(name: str) -> Path:
        shutil.copytree(stim, t / name)
        return t / name

    (copy("st_corrupt_wav") / "audio" / wavs[0].name).write_bytes(b"RIFF....garbage")
    (copy("st_empty_wav") / "audio" / wavs[0].name).write_bytes(b"")
    (copy("st_missing_wav") / "audio" / wavs[0].name).unlink()
    d = copy("st_no_ids")
    _write_meta(d, _read_meta(d).drop(columns=["stimulus_id"]))
    d = copy("st_dup_ids")
    m2 = _read_meta(d)
    m2.loc[1, "stimulus_id"] = m2.loc[0, "stimulus_id"]
    _write_meta(d, m2)
    _edit_manifest(d, _unhash)
    _edit_manifest(copy("st_no_rate"), lambda m: m.pop("sample_rate"))
    _edit_manifest(copy("st_rate_zero"), lambda m: m.update(sample_rate=0))
    _edit_manifest(copy("st_rate_str"), lambda m: m.update(sample_rate="sixteen k"))
    _edit_manifest(copy("st_wrong_rate"), lambda m: m.update(sample_rate=44100))      # files are 16 kHz
    (copy("st_bad_manifest") / "manifest.json").write_text("{ not json")
    _meta_file(copy("st_bad_meta")).write_bytes(b"PAR1 garbage garbage")
    d = copy("st_no_midi")
    _write_meta(d, _read_meta(d).drop(columns=["midi"]))
    _edit_manifest(d, _unhash)
    d = copy("st_nan_audio")
    sf.write(d / "audio" / wavs[3].name, np.full(8000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    _edit_manifest(d, _unhash)
    d = copy("st_stereo")
    x, sr = sf.read(wavs[2])
    sf.write(d / "audio" / wavs[2].name, np.stack([x, x], axis=1), sr)
    _edit_manifest(d, _unhash)
    d = copy("st_silent")      # legal: one clip of digital silence
    sf.write(d / "audio" / wavs[4].name, np.zeros_like(sf.read(wavs[4])[0]), 16000)
    _edit_manifest(d, _unhash)
    f["store_silent"] = t / "store_silent"
    r.must(["extract", "-m", "mfcc", "-s", str(d), "--out", str(f["store_silent"])], allow_fail=True)
    d = copy("st_22k")         # one clip at another rate than the set's
    x, sr = sf.read(wavs[5])
    import soxr

    sf.write(d / "audio" / wavs[5].name, soxr.resample(x, sr, 22050), 22050)
    _edit_manifest(d, _unhash)
    f["stim_8k"] = t / "stim_8k"
    r.must(["stimuli", "notes", "--out", str(f["stim_8k"]), "--instruments", "flute,0", "--midi", "60-72",
            "--sample-rate", "8000", *note])
    # a tiny corpus and damaged copies
    f["corpus"] = t / "corpus"
    r.must(["corpus", "music", "--out", str(f["corpus"]), "--n", "4", "--duration", "4", "--pieces-per-shard", "2"])
    shutil.copytree(f["corpus"], t / "co_bad_shard")
    next((t / "co_bad_shard" / "shards").glob("*.npy")).write_bytes(b"\x93NUMPY garbage")
    shutil.copytree(f["corpus"], t / "co_no_json")
    (t / "co_no_json" / "corpus.json").unlink()
    shutil.copytree(f["corpus"], t / "co_bad_json")
    (t / "co_bad_json" / "corpus.json").write_text("[1, 2")
    shutil.copytree(f["corpus"], t / "co_no_shards")
    shutil.rmtree(t / "co_no_shards" / "shards")
    # training: a valid tiny config, its run (backbone + checkpoint) and broken configs
    good = {"objective": "ntxent",
            "model": {"family": "vit1d", "config": {"dim": 32, "depth": 2, "heads": 2, "max_frames": 64}},
            "data": {"train": [str(f["corpus"])], "val": 0.5, "batch_size": 2, "crop_s": 1.0, "num_workers": 0,
                     "val_max_items": 2},
            "optim": {"lr": 1e-3, "max_steps": 2, "warmup_steps": 1},
            "trainer": {"accelerator": "cpu", "devices": 1, "log_every_n_steps": 1, "val_every_n_steps": 2,
                        "checkpoint_every_n_steps": 2, "progress_bar": False},
            "seed": 0}
    f["train_cfg"] = _yaml(t / "train_ok.yaml", good)

    def tcfg(name: str, **patch: object) -> None:
        c = json.loads(json.dumps(good))
        for key, val in patch.items():
            sec, _, sub = key.partition("__")
            if sub:
                c[sec][sub] = val
            elif val is None:
                c.pop(sec, None)
            else:
                c[sec] = val
        _yaml(t / f"tc_{name}.yaml", c)

    tcfg("unknown_key", optimm={"lr": 0.1})
    tcfg("lr_str", optim__lr="fast")
    tcfg("neg_steps", optim__max_steps=-1)
    tcfg("val_big", data__val=1.5)
    tcfg("no_corpus", data__train=["/nonexistent/corpus"])
    tcfg("stim_as_corpus", data__train=[str(f["stim"])])
    tcfg("bad_corpus", data__train=[str(t / "co_bad_shard")])
    tcfg("family", model={"family": "nosuchfamily", "config": {}})
    tcfg("crop_long", data__crop_s=60.0,           # longer than every 4 s piece (frames fit the model)
         model={"family": "vit1d", "config": {"dim": 32, "depth": 2, "heads": 2, "max_frames": 4096}})
    tcfg("val_one", data__val=0.25)                # one validation piece: NT-Xent needs two
    (t / "tc_tag.yaml").write_text(f"objective: ntxent\nseed: !!python/object/apply:os.system ['touch {pw}']\n")
    f["trainrun"] = t / "trainrun"
    ok = r.must(["train", "ntxent", "--config", str(f["train_cfg"]), "--out", str(f["trainrun"])], allow_fail=True)
    f["backbone"] = f["trainrun"] / "backbone" if ok else t / "missing-backbone"
    if ok:   # a run directory whose last.ckpt was replaced by a malicious pickle (resume must not run it)
        shutil.copytree(f["trainrun"], t / "trainrun_evil")
        for ck in (t / "trainrun_evil" / "checkpoints").glob("*.ckpt"):
            _evil_pickle(ck, pw)
        mf = t / "trainrun_evil" / "manifest.json"   # as if killed before the end: resuming loads last.ckpt
        if mf.is_file():
            mf.write_text(json.dumps({**json.loads(mf.read_text()), "finished": False}))
        shutil.copytree(f["backbone"], t / "ckpt_evil")   # a musiclens checkpoint whose weights are a pickle
        (t / "ckpt_evil" / "model.safetensors").unlink()
        _evil_pickle(t / "ckpt_evil" / "model.pt", pw)
        shutil.copytree(f["backbone"], t / "ckpt_trunc")
        w = t / "ckpt_trunc" / "model.safetensors"
        w.write_bytes(w.read_bytes()[:200])
        shutil.copytree(f["backbone"], t / "ckpt_family")
        cj = json.loads((t / "ckpt_family" / "config.json").read_text())
        cj["family"] = "nosuchfamily"
        (t / "ckpt_family" / "config.json").write_text(json.dumps(cj))
    # Hugging Face directories
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    cfg = Wav2Vec2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                         conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=16,
                         num_conv_pos_embedding_groups=2, do_stable_layer_norm=True, feat_extract_norm="layer")
    Wav2Vec2Model(cfg).save_pretrained(t / "hf_ok")
    shutil.copytree(t / "hf_ok", t / "hf_missing")
    state = load_file(t / "hf_missing" / "model.safetensors")
    save_file({k: v for k, v in state.items() if "layers.1.attention.k_proj" not in k},
              t / "hf_missing" / "model.safetensors", metadata={"format": "pt"})
    shutil.copytree(t / "hf_ok", t / "hf_pickle")
    (t / "hf_pickle" / "model.safetensors").unlink()
    _evil_pickle(t / "hf_pickle" / "pytorch_model.bin", pw)
    shutil.copytree(t / "hf_ok", t / "hf_noweights")
    (t / "hf_noweights" / "model.safetensors").unlink()
    shutil.copytree(t / "hf_ok", t / "hf_badconfig")
    (t / "hf_badconfig" / "config.json").write_text("{ nope")
    (t / "evil.pt").write_bytes((t / "hf_pickle" / "pytorch_model.bin").read_bytes())
    # studies
    base = {"study": {"name": "bad"},
            "stimuli": {"grid": "quick", "instruments": ["flute", "acoustic_grand_piano"], "midi": list(range(60, 85)),
                        "duration_s": 0.5, "hold_s": 0.3},
            "networks": {"mfcc": {"model": "mfcc"}},
            "rsa": {"n_permutations": 20, "n_bootstraps": 20},
            "steps": {"run": ["stimuli", "extract", "rsa"]}}

    def study(name: str, drop: tuple[str, ...] = (), **patch: object) -> Path:
        s = json.loads(json.dumps(base))
        for sec in drop:
            s.pop(sec, None)
        for key, val in patch.items():
            sec, _, sub = key.partition("__")
            if sub:
                s.setdefault(sec, {})[sub] = val
            else:
                s[sec] = val
        return _yaml(t / f"sy_{name}.yaml", s)

    study("ok")
    study("ok_13", stimuli__midi=list(range(60, 73)))     # one octave + 1: bootstraps hit constant RDMs
    study("stimonly", steps={"run": ["stimuli", "summary"]}, drop=("rsa",))
    study("many", rsa__n_permutations="many")
    study("negcount", rsa__n_bootstraps=-5)
    study("badnet", networks={"mfcc": {"model": "no-such-net"}})
    study("badrdm", rsa__models=["pitch_height", "chromaa"])
    study("rsa_key", rsa__n_permutation=10)
    study("top_key", analysis={"x": 1})
    study("net_key", networks={"mfcc": {"model": "mfcc", "layerz": [0]}})
    study("badstep", steps={"run": ["stimuli", "extrakt"]})
    study("distance", rsa__distance="manhattan")
    study("midi_str", stimuli__midi="60-abc")
    study("one_note", stimuli__midi=[60], stimuli__instruments=["flute"])
    study("instr", stimuli__instruments=["kazoo"])
    study("no_nets", networks={})
    study("rate_neg", stimuli__sample_rate=-16000)
    study("dur_str", stimuli__duration_s="long")
    study("badcorpus", corpora={"c": {"kind": "music", "n": -1}}, steps={"run": ["corpora", "stimuli"]})
    study("trained_missing", networks={"x": {"trained": "nosuch"}})
    study("alpha", rsa__alpha=5)
    (t / "sy_syntax.yaml").write_text("study: {name: x\nsteps: [\n")
    (t / "sy_empty.yaml").write_text("")
    (t / "sy_list.yaml").write_text("- stimuli\n- rsa\n")
    (t / "sy_tag.yaml").write_text(f"study: !!python/object/apply:os.system ['touch {pw}']\n")
    f["studyrun"] = t / "studyrun"
    r.must(["run", str(t / "sy_stimonly.yaml"), "--out", str(f["studyrun"])], allow_fail=True)
    if f["studyrun"].is_dir():
        shutil.copytree(f["studyrun"], t / "studyrun_tag")
        (t / "studyrun_tag" / "config.yaml").write_text(
            f"study: !!python/object/apply:os.system ['touch {pw}']\n")
    # NSynth look-alikes
    ns = t / "nsynth" / "nsynth-valid"
    (ns / "audio").mkdir(parents=True)
    examples = {}
    for k, inst in enumerate(["flute_acoustic_000", "flute_acoustic_001"]):
        for pitch in (60, 61, 62):
            ns_str = f"{inst}-{pitch:03d}-100"
            examples[ns_str] = {"note": 100 * k + pitch, "note_str": ns_str, "instrument": k, "instrument_str": inst,
                                "pitch": pitch, "velocity": 100, "sample_rate": 16000, "qualities": [0] * 10,
                                "qualities_str": [], "instrument_family": 2, "instrument_family_str": "flute",
                                "instrument_source": 0, "instrument_source_str": "acoustic"}
            tt = np.arange(8000) / 16000
            sf.write(ns / "audio" / f"{ns_str}.wav", 0.3 * np.sin(2 * np.pi * 440 * 2 ** ((pitch - 69) / 12) * tt),
                     16000, subtype="PCM_16")
    (ns / "examples.json").write_text(json.dumps(examples))
    for name in ("nsynth_badjson", "nsynth_missing_wav", "nsynth_fields", "nsynth_rate"):
        shutil.copytree(t / "nsynth", t / name)
    (t / "nsynth_badjson" / "nsynth-valid" / "examples.json").write_text("{oops")
    next((t / "nsynth_missing_wav" / "nsynth-valid" / "audio").glob("*.wav")).unlink()
    (t / "nsynth_fields" / "nsynth-valid" / "examples.json").write_text(json.dumps({"a": {"pitch": 60}}))
    w0 = sorted((t / "nsynth_rate" / "nsynth-valid" / "audio").glob("*.wav"))[0]
    sf.write(w0, np.zeros(4000), 8000)
    # MIDI and MAESTRO look-alikes
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=0)
    for i, p in enumerate((60, 64, 67, 72)):
        inst.notes.append(pretty_midi.Note(velocity=90, pitch=p, start=0.4 * i, end=0.4 * i + 0.35))
    pm.instruments.append(inst)
    (t / "midi_ok").mkdir()
    pm.write(str(t / "midi_ok" / "tune.mid"))
    pretty_midi.PrettyMIDI().write(str(t / "no_notes.mid"))
    (t / "bad.mid").write_bytes(b"MThd not really midi")
    (t / "maestro_csv").mkdir()
    (t / "maestro_csv" / "maestro-v3.0.0.csv").write_text(
        "canonical_composer,canonical_title,split,year,midi_filename,audio_filename,duration\n"
        "X,Y,train,2018,2018/a.midi,2018/a.wav,10.0\n")
    (t / "maestro_badcsv").mkdir()
    (t / "maestro_badcsv" / "maestro-v3.0.0.csv").write_text("this,is\nnot,maestro\n")
    # misc
    (t / "emptydir").mkdir()
    (t / "a_file.txt").write_text("not a folder\n")
    (t / "bad.sf2").write_bytes(b"RIFF not a soundfont")
    return f


def _evil_pickle(path: Path, marker: Path) -> None:
    """A pickle whose loading runs ``touch marker``."""

    class Payload:
        def __reduce__(self):  # noqa: ANN204
            return (os.system, (f"touch {marker}",))

    with open(path, "wb") as fh:
        pickle.dump({"state_dict": {"w": Payload()}}, fh)


# ----------------------------------------------------------------------------------------- output checks
