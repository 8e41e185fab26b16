"""The report's training section: loss curves, final metrics and the RSA curve over steps.

Reads ``RUN_DIR/train/<condition>/`` (``manifest.json``, ``logs/metrics.csv``, ``rsa_curve.csv``)
as written by :func:`musiclens.train.engine.train`.  The chroma-curve sentence is computed from
``rsa_curve.csv``: for each condition, the best layer's partial chroma at the first and the last
logged step.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from musiclens.report.sections import SECTIONS, ReportContext, Section, img_html, table_html

__all__ = ["curve_sentence", "training_section"]


def curve_sentence(curve: pd.DataFrame, *, condition: str, model: str = "chroma",
                   statistic: str = "partial-tau-b") -> str:
    """How the best layer's ``statistic`` for ``model`` changed from the first to the last step.

    Parameters
    ----------
    curve
        ``rsa_curve.csv`` rows (``step, layer, statistic, model_rdm, value``).
    """
    rows = curve[(curve["model_rdm"] == model) & (curve["statistic"] == statistic)]
    if rows.empty:
        return ""
    per_step = rows.groupby("step")["value"].max().sort_index()
    first_step, last_step = int(per_step.index[0]), int(per_step.index[-1])
    last = rows[rows["step"] == last_step]
    best = last.loc[last["value"].idxmax()]
    change = per_step.iloc[-1] - per_step.iloc[0]
    trend = "rose" if change > 0 else "fell" if change < 0 else "stayed"
    label = {"chroma": "chroma", "pitch_height": "pitch height"}.get(model, model)
    stat = statistic.replace("partial-", "partial ")
    return (f"During {condition} training, the largest {stat} for {label} over layers {trend} from "
            f"{per_step.iloc[0]:.3f} at step {first_step} to {per_step.iloc[-1]:.3f} at step {last_step} "
            f"(then at {best['layer']}).")


def _curve_figure(curve: pd.DataFrame, path: Path, *, title: str) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [(m, s) for m, s in (("chroma", "partial-tau-b"), ("pitch_height", "tau-a"))
             if not curve[(curve["model_rdm"] == m) & (curve["statistic"] == s)].empty]
    if not pairs:
        return None
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 3.4), squeeze=False)
    for ax, (model, stat) in zip(axes[0], pairs):
        rows = curve[(curve["model_rdm"] == model) & (curve["statistic"] == stat)]
        layers = sorted(rows["layer"].unique())
        cmap = plt.get_cmap("viridis")
        for i, layer in enumerate(layers):
            r = rows[rows["layer"] == layer].sort_values("step")
            ax.plot(r["step"], r["value"], marker="o", ms=3, color=cmap(i / max(1, len(layers) - 1)), label=layer)
        ax.axhline(0, color="0.6", lw=0.8)
        ax.set_xlabel("training step")
        ax.set_ylabel(stat)
        ax.set_title(f"{model} ({stat})")
    axes[0][-1].legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _loss_figure(metrics: pd.DataFrame, path: Path, *, title: str) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [c for c in metrics.columns if c.startswith("train/") and metrics[c].notna().any()]
    if "step" not in metrics.columns or not cols:
        return None
    cols = cols[:4]
    fig, axes = plt.subplots(1, len(cols), figsize=(3.6 * len(cols), 3.0), squeeze=False)
    for ax, col in zip(axes[0], cols):
        r = metrics[["step", col]].dropna()
        ax.plot(r["step"], r[col], lw=1.2)
        ax.set_title(col, fontsize=9)
        ax.set_xlabel("step")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def training_section(ctx: ReportContext) -> Section | None:
    """Per training condition: objective, steps, final metrics, loss curves, RSA curve."""
    root = ctx.run_dir / "train"
    conditions = ctx.cfg.get("training") or {}
    if not root.is_dir() or not conditions:
        return None
    sec = Section("Training")
    summary_rows = []
    for name, cond in conditions.items():
        d = root / name
        if not d.is_dir():
            continue
        manifest = json.loads((d / "manifest.json").read_text()) if (d / "manifest.json").is_file() else {}
        metrics = manifest.get("metrics") or {}
        summary_rows.append({"condition": name, "objective": cond.get("objective"), "from": cond.get("from") or "",
                             "steps": manifest.get("global_step"), "finished": manifest.get("finished"),
                             **{k: v for k, v in metrics.items() if isinstance(v, int | float) and _headline(k)}})
        sec.html.append(f"<h3>{html.escape(name)}</h3><p>{html.escape(str(cond.get('description') or ''))}</p>")
        log = d / "logs" / "metrics.csv"
        if log.is_file():
            fig = _loss_figure(pd.read_csv(log), ctx.figures_dir / f"train_{name}_loss.png", title=f"{name}: training")
            if fig is not None:
                sec.html.append(img_html(fig, f"{name}: training losses by step"))
        curve_path = d / "rsa_curve.csv"
        if curve_path.is_file():
            curve = pd.read_csv(curve_path)
            if not curve.empty:
                sentence = curve_sentence(curve, condition=name)
                if sentence:
                    sec.findings.append(sentence)
                    sec.html.append(f"<p>{html.escape(sentence)}</p>")
                    sec.md.append(f"- {sentence}")
                fig = _curve_figure(curve, ctx.figures_dir / f"train_{name}_rsa_curve.png",
                                    title=f"{name}: RSA on the callback note set over training")
                if fig is not None:
                    sec.html.append(img_html(fig, f"{name}: pitch height and partial chroma by layer over steps"))
    if summary_rows:
        table = pd.DataFrame(summary_rows)
        sec.html.insert(0, table_html(table))
        sec.md.insert(0, table.to_markdown(index=False) if _has_tabulate() else table.to_csv(index=False))
    return sec


def _headline(metric: str) -> bool:
    """Metrics shown in the summary table (all of them are in logs/metrics.csv)."""
    if metric in ("train/loss", "val/loss"):
        return True
    return metric.startswith("val/") and any(k in metric for k in ("f1", "per", "acc", "top1"))


def _has_tabulate() -> bool:
    import importlib.util

    return importlib.util.find_spec("tabulate") is not None


SECTIONS.register("training", training_section, help="training conditions: losses, metrics, RSA over steps")
