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

__all__ = ["ANSWERS", "training_caveats", "unlearned_groups", "answer_sentences", "vit1d_answer", "teachers_answer", "trained_and_controls"]

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
    from musiclens.report.headline import contrast_sentences, headline_statistic
    from musiclens.report.sentences import chroma_answer, disagreement_sentence

    rsa = _read(ctx, "rsa", "rsa.csv")
    if rsa is None:
        return []
    method = (ctx.cfg.get("rsa") or {}).get("method", "tau-a")
    out: list[str] = []
    contrasts = _read(ctx, "contrasts", "contrasts.csv")
    if contrasts is not None:
        stat, model = headline_statistic(ctx.cfg)
        out += contrast_sentences(contrasts, stat, model, alpha=float((ctx.cfg.get("rsa") or {}).get("alpha", 0.05)),
                                  unlearned=unlearned_groups(ctx))
    layers = rsa[~rsa["statistic"].str.endswith("-best-layer-cv")]
    out.append(chroma_answer(layers, method=method))
    out.append(disagreement_sentence(layers, method=method))
    return out + training_caveats(ctx)


def training_caveats(ctx: ReportContext) -> list[str]:
    """Whether every trained condition learned its task (``train/conditions.csv``, the learning bars).

    A network that never learned transcription cannot answer whether transcription training
    makes chroma emerge; the report says so instead of letting its RSA row speak for the method.
    """
    table = _read(ctx, "train", "conditions.csv")
    if table is None:
        return []
    out = []
    barred = table[table["bar_metric"].notna()].copy()
    barred["ok"] = barred["passed"].astype(str).str.lower().eq("true")
    for cond, sel in barred.groupby("condition", sort=False):
        missed = sel[~sel["ok"]]
        if missed.empty:
            continue
        metric = str(sel["bar_metric"].iloc[0]).removeprefix("val/")
        values = ", ".join("no value" if pd.isna(v) else f"{float(v):.3f}" for v in missed["value"])
        inits = ", ".join(f"{float(v):.3f}" for v in missed["at_init"] if not pd.isna(v))
        who = f"{cond} (runs {', '.join(missed['run'])})" if len(sel) > 1 else str(cond)
        out.append(f"Caveat: {who} missed the learning bar {sel['bar_rule'].iloc[0]} in {len(missed)} of {len(sel)} "
                   f"run(s) ({metric} {values}" + (f"; {inits} at initialisation" if inits else "") + "), so "
                   f"those runs do not speak for {sel['objective'].iloc[0]} training at this scale; their numbers are "
                   "shown but flagged.")
    if len(barred) and barred["ok"].all():
        per = []
        for cond, sel in barred.groupby("condition", sort=False):
            vals = sel["value"].astype(float)
            rng = f"{vals.min():.2f}" if len(sel) == 1 else f"{vals.min():.2f}–{vals.max():.2f}"
            per.append(f"{cond} {str(sel['bar_metric'].iloc[0]).removeprefix('val/')} {rng}")
        out.append(f"Every trained run reached its learning bar on held-out data ({'; '.join(per)}).")
    return out


def unlearned_groups(ctx: ReportContext) -> set[str]:
    """Network groups with a trained run that missed its learning bar (``train/conditions.csv``)."""
    table = _read(ctx, "train", "conditions.csv")
    if table is None:
        return set()
    missed = set(table[table["bar_metric"].notna() & ~table["passed"].astype(str).str.lower().eq("true")]["run"])
    out = set()
    for name, net in (ctx.cfg.get("networks") or {}).items():
        if net.get("trained") in missed and not net.get("randomize"):
            out.add(str(net.get("group") or name))
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


def _probe_contrasts(ctx: ReportContext) -> list[str]:
    from musiclens.report.headline import probe_contrast_sentences

    contrasts = _read(ctx, "contrasts", "contrasts.csv")
    if contrasts is None:
        return []
    return probe_contrast_sentences(contrasts, alpha=float((ctx.cfg.get("rsa") or {}).get("alpha", 0.05)),
                                    unlearned=unlearned_groups(ctx))


def _vit1d(ctx: ReportContext) -> list[str]:
    return (_probe_contrasts(ctx) + vit1d_answer(_read(ctx, "probe", "probe.csv"),
                                                 _read(ctx, "attention", "attention_summary.csv"),
                                                 _read(ctx, "ssm", "ssm_summary.csv"), ctx.cfg.get("networks") or {})
            + training_caveats(ctx))


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
    contrasts = _probe_contrasts(ctx)
    if contrasts:   # the paired tests across seeds replace the best-network-vs-best-network comparison
        return contrasts + training_caveats(ctx)
    return teachers_answer(probe, ctx.cfg.get("networks") or {}, ctx.cfg.get("training") or {}) + training_caveats(ctx)


ANSWERS.register("chroma", _chroma, help="partial chroma across networks (study 1)")
ANSWERS.register("vit1d", _vit1d, help="local probes, attention onsets, SSMs of trained vs random (study 2)")
ANSWERS.register("teachers", _teachers, help="probe scores with vs without a CQT teacher (study 3)")


def answer_sentences(ctx: ReportContext) -> list[str]:
    """The answer of the study's ``study.answer`` builder (``auto``: chroma)."""
    name = str((ctx.cfg.get("study") or {}).get("answer") or "auto")
    if name == "auto":
        name = "chroma"
    return [s for s in ANSWERS.get(name)(ctx) if s]
