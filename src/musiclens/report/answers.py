"""The plain-language answer at the top of a report, one builder per kind of study question.

``study.answer`` in a study file names a builder in :data:`ANSWERS` (``auto`` picks ``chroma``
when the run has RSA results).  Every builder reads only saved results and returns sentences
computed from the numbers; a test changes the numbers and sees the sentences change.

``chroma``
    Which networks show partial chroma (height partialled out), and in which layers.
``vit1d``
    For each trained network against its random-weights control: local probes on frame tokens
    above chance or not, onsets in attention vs spectral flux, which layers' SSMs match which
    references, and the best pooling for global tasks.
``teachers``
    For pitch and harmony tasks, the best probe score of networks trained with a CQT teacher
    against those trained without (from each condition's ``cqt_weight``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from musiclens.registry import Registry
from musiclens.report.sections import ReportContext

__all__ = ["ANSWERS", "TASK_BARS", "training_caveats", "answer_sentences", "vit1d_answer", "teachers_answer", "trained_and_controls"]

AnswerFn = Callable[[ReportContext], list[str]]
#: Answer builders by name.
ANSWERS: Registry[AnswerFn] = Registry("report answer")


def _read(ctx: ReportContext, *parts: str) -> pd.DataFrame | None:
    path = ctx.run_dir.joinpath(*parts)
    if not path.is_file():
        return None
    t = pd.read_csv(path)
    return None if t.empty else t


def _chroma(ctx: ReportContext) -> list[str]:
    from musiclens.report.sentences import chroma_answer

    rsa = _read(ctx, "rsa", "rsa.csv")
    if rsa is None:
        return []
    method = (ctx.cfg.get("rsa") or {}).get("method", "tau-a")
    out = [chroma_answer(rsa[~rsa["statistic"].str.endswith("-best-layer-cv")], method=method)]
    return out + training_caveats(ctx)


#: A fine-tuned network counts as trained on its task above these validation scores.
TASK_BARS = {"transcription": ("val/frame_f1", 0.5, "higher"), "ctc": ("val/per", 0.5, "lower")}


def training_caveats(ctx: ReportContext) -> list[str]:
    """Sentences for supervised conditions that did not learn their task (validation score vs a bar).

    A network that never learned transcription cannot answer whether transcription training
    makes chroma emerge; the report says so instead of letting its RSA row speak for the method.
    """
    import json

    out = []
    for name, cond in (ctx.cfg.get("training") or {}).items():
        bar = TASK_BARS.get(str(cond.get("objective")))
        path = ctx.run_dir / "train" / name / "manifest.json"
        if bar is None or not path.is_file():
            continue
        metric, threshold, better = bar
        value = (json.loads(path.read_text()).get("metrics") or {}).get(metric)
        if value is None:
            out.append(f"Caveat: {name} has no validation {metric}, so whether it learned its task is unknown "
                       "(give the condition data.val).")
            continue
        learned = value >= threshold if better == "higher" else value <= threshold
        if not learned:
            out.append(f"Caveat: {name} reached validation {metric.removeprefix('val/')} = {value:.2f} "
                       f"({'below' if better == 'higher' else 'above'} {threshold}), so it has not learned its task "
                       "at this scale and its RSA does not test the effect of that training (run --scale full).")
    return out


def trained_and_controls(networks: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], dict[str, str]]:
    """Trained networks, and for each the random-weights network of the same condition (if any)."""
    trained = [n for n, e in networks.items() if e.get("trained") and not e.get("randomize")]
    controls = {}
    for n in trained:
        cond = networks[n]["trained"]
        ctl = [m for m, e in networks.items() if e.get("trained") == cond and e.get("randomize")]
        if ctl:
            controls[n] = ctl[0]
    return trained, controls


def _best(probe: pd.DataFrame, network: str, task: str) -> pd.Series | None:
    t = probe[(probe["network"] == network) & (probe["task"] == task) & (probe["split"] == "test")
              & probe["primary"].astype(bool) & (probe["layer"] != "weighted_sum")]
    return None if t.empty else t.loc[t["value"].idxmax()]


def vit1d_answer(probe: pd.DataFrame | None, attention: pd.DataFrame | None, ssm: pd.DataFrame | None,
                 networks: Mapping[str, Mapping[str, Any]], *, local_tasks: tuple[str, ...] = ("chords", "onsets", "beats"),
                 ) -> list[str]:
    """The ViT-1D study's answer from the probe table, attention summary and SSM summary."""
    from musiclens.report.frames import ssm_sentences
    from musiclens.report.probes import pooling_sentences

    out: list[str] = []
    trained, controls = trained_and_controls(networks)
    for net in trained:
        ctl = controls.get(net)
        if probe is not None:
            carried, not_carried = [], []
            for task in local_tasks:
                b = _best(probe, net, task)
                if b is None:
                    continue
                c = _best(probe, ctl, task) if ctl else None
                text = f"{task} ({b['metric']} {b['value']:.3f} at {b['layer']}, chance {b['chance']:.3f}"
                text += f", random weights {c['value']:.3f})" if c is not None else ")"
                (carried if b["ci_low"] > b["chance"] else not_carried).append(text)
            if carried or not_carried:
                s = f"{net}'s frame tokens carry "
                s += ", ".join(carried) if carried else "no local task above chance"
                if not_carried:
                    s += ("; not above chance: " if carried else " (") + ", ".join(not_carried) + ("" if carried else ")")
                out.append(s + ".")
            glob = probe[(probe["network"] == net) & (probe["pooling"] != "frames")]
            out += pooling_sentences(glob)
        if attention is not None:
            rows = attention[(attention["network"] == net) & (attention["recipe"] != "spectral_flux")
                             & (attention["head"].astype(str) == "mean")]
            flux = attention[(attention["network"] == net) & (attention["recipe"] == "spectral_flux")]
            if not rows.empty:
                b = rows.loc[rows["f_measure"].idxmax()]
                s = (f"Onsets in {net}'s attention: best onset F = {b['f_measure']:.2f} at {b['layer']} "
                     f"('{b['recipe']}')")
                if not flux.empty:
                    s += f" vs spectral flux {float(flux['f_measure'].iloc[0]):.2f}"
                if ctl is not None:
                    crow = attention[(attention["network"] == ctl) & (attention["recipe"] != "spectral_flux")
                                     & (attention["head"].astype(str) == "mean")]
                    if not crow.empty:
                        s += f" and random weights {crow['f_measure'].max():.2f}"
                out.append(s + ".")
        if ssm is not None:
            out += ssm_sentences(ssm[ssm["network"] == net])
    return out


def _vit1d(ctx: ReportContext) -> list[str]:
    return vit1d_answer(_read(ctx, "probe", "probe.csv"), _read(ctx, "attention", "attention_summary.csv"),
                        _read(ctx, "ssm", "ssm_summary.csv"), ctx.cfg.get("networks") or {})


def teachers_answer(probe: pd.DataFrame, networks: Mapping[str, Mapping[str, Any]],
                    training: Mapping[str, Mapping[str, Any]], *,
                    tasks: tuple[str, ...] = ("pitch", "pitch_class", "chords")) -> list[str]:
    """Does the CQT teacher help?  Best probe scores with vs without a CQT teacher, per task."""
    trained, _ = trained_and_controls(networks)
    with_cqt, without = [], []
    for n in trained:
        opts = (training.get(networks[n]["trained"]) or {}).get("options") or {}
        (with_cqt if float(opts.get("cqt_weight", 1.0)) > 0 else without).append(n)
    if not with_cqt or not without:
        return []
    out = []
    for task in tasks:
        a = [b for b in (_best(probe, n, task) for n in with_cqt) if b is not None]
        b_ = [b for b in (_best(probe, n, task) for n in without) if b is not None]
        if not a or not b_:
            continue
        top_a = max(a, key=lambda r: r["value"])
        top_b = max(b_, key=lambda r: r["value"])
        diff = top_a["value"] - top_b["value"]
        if top_a["ci_low"] > top_b["value"]:
            verdict = "the CQT teacher helps"
        elif top_b["ci_low"] > top_a["value"]:
            verdict = "the CQT teacher hurts"
        else:
            verdict = "no clear difference (the CIs overlap)"
        out.append(f"{task} ({top_a['metric']}): with a CQT teacher best {top_a['value']:.3f} ({top_a['network']}, "
                   f"{top_a['layer']}), without {top_b['value']:.3f} ({top_b['network']}, {top_b['layer']}); "
                   f"difference {diff:+.3f}: {verdict}.")
    return out


def _teachers(ctx: ReportContext) -> list[str]:
    probe = _read(ctx, "probe", "probe.csv")
    if probe is None:
        return []
    return teachers_answer(probe, ctx.cfg.get("networks") or {}, ctx.cfg.get("training") or {})


ANSWERS.register("chroma", _chroma, help="partial chroma across networks (study 1)")
ANSWERS.register("vit1d", _vit1d, help="local probes, attention onsets, SSMs of trained vs random (study 2)")
ANSWERS.register("teachers", _teachers, help="probe scores with vs without a CQT teacher (study 3)")


def answer_sentences(ctx: ReportContext) -> list[str]:
    """The answer of the study's ``study.answer`` builder (``auto``: chroma)."""
    name = str((ctx.cfg.get("study") or {}).get("answer") or "auto")
    if name == "auto":
        name = "chroma"
    return [s for s in ANSWERS.get(name)(ctx) if s]
