"""`run_rsa`: pooled activations + stimulus metadata -> a tidy table of RSA statistics.

For one network, every layer gets one RDM per subject (instrument) over the conditions
(pitches).  For every layer and model RDM the table holds (``statistic`` column):

``<method>`` (e.g. ``tau-a``)
    the subject-mean comparison of layer and model RDM, with the layer's noise ceiling;
``partial-<method>``
    the subject-mean partial correlation with each model, controlling for the other models
    (correlation-type methods, two or more models; see :mod:`musiclens.rsa.partial`): the
    textbook formula on ``<method>`` coefficients with a unit diagonal.  For ``tau-a`` this is
    ``partial-tau-a`` (textbook partial τ_a), and a second statistic is added:
``partial-tau-b``
    (method ``tau-a`` only) Kendall's partial τ computed from τ_b coefficients: the same formula
    with each RDM's τ_a self-concordance (its fraction of untied pairs) on the diagonal, which
    equals the unit-diagonal formula on τ_b = τ_a / sqrt(self_x self_y) (:func:`partial_statistic`
    names it; it is the one the studies report).  Before musiclens 0.3 this statistic was
    labelled ``partial-tau-a``.  Each statistic's permutation p uses its own null (the same
    permutations), so permutation p-values published under the old name are exact for partial
    τ_b: the rename changes no value and no p.  The p of partial τ_a equals that of partial τ_b
    exactly when the network RDM and every partialled-out model RDM are untied (then partial
    τ_b = κ · partial τ_a with κ fixed by the model RDMs, for every permutation and subject);
    otherwise (e.g. pitch height on an equal-tempered grid has tied distances) no fixed monotone
    map relates them and the two p-values are close but not identical
    (:mod:`musiclens.rsa.partial` derives both statements);
``beta_<predictor>``
    subject-mean standardised regression betas on the models (+ pairwise interactions);
``<statistic>-best-layer-cv``
    the leave-one-subject-out best layer: ``layer`` is the layer chosen most often, ``value`` the
    mean held-out score (one row per model RDM).

``p`` comes from ``test``: a one-sided t-test across subjects (``"t-test"``) or the
stimulus-label permutation test (``"permutation"``: the same permutation of condition labels is
applied to every model RDM and every subject; the statistic is recomputed in full).  Both
p-values are kept in :attr:`RSAResult.tests`.  ``p_corrected`` applies ``correction`` over the
layers × model RDMs of each statistic (best-layer rows: over model RDMs); ``significant`` is
``p_corrected < alpha``.  ``ci_low``/``ci_high`` are percentile bootstrap intervals over
``bootstrap_over`` (``"instruments"``, ``"pitches"`` or ``"both"`` at once); with
``n_bootstraps=0`` they are t intervals across subjects.  ``noise_ceiling_low``/``_high`` are
filled on ``<method>`` rows only and are NaN (not applicable) on the other statistics; with
one subject they are NaN everywhere and ``note`` says why (``note`` is empty otherwise); NaN
never appears in ``value``, ``ci_*``, ``p`` or ``p_corrected`` (an error is raised instead).
``n_boot_undefined`` counts the resamples of a bootstrap over pitches left out of ``ci_*``: those
on which a model RDM is constant (e.g. binary chroma when no two drawn conditions share a pitch
class), where no comparison, partial correlation or beta is defined; they are logged too (0 on
every row when there are none, and on rows whose interval comes from no such bootstrap).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from musiclens.errors import AnalysisError, ConfigError, InsufficientDataError
from musiclens.fsutil import atomic_write_bytes, atomic_write_text
from musiclens.provenance import Timer
from musiclens.rsa import inference
from musiclens.rsa.batched import PreparedData, condition_weights, pair_permutations, permuted_scores, prepare, weighted_scores
from musiclens.rsa.compare import COMPARISONS
from musiclens.rsa.models import model_vectors
from musiclens.rsa.partial import partial_correlations, regress, regress_permuted, regress_weighted, regression_design
from musiclens.rsa.rdm import RDMStack, subject_rdms

__all__ = ["run_rsa", "RSAResult", "TABLE_COLUMNS", "check_stimulus_order", "partial_statistic",
           "partial_statistics", "self_concordance"]

logger = logging.getLogger(__name__)

#: Columns of the tidy table, in order.
TABLE_COLUMNS: tuple[str, ...] = (
    "network", "layer", "model_rdm", "statistic", "value", "ci_low", "ci_high", "p", "p_corrected",
    "significant", "noise_ceiling_low", "noise_ceiling_high", "note", "n_boot_undefined",
)
_BOOTSTRAP_OVER = ("instruments", "pitches", "both")


def partial_statistics(method: str) -> list[str]:
    """The partial statistics :func:`run_rsa` reports for ``method`` (the headline one first)."""
    return ["partial-tau-b", "partial-tau-a"] if method == "tau-a" else [f"partial-{method}"]


def partial_statistic(method: str) -> str:
    """The partial statistic studies and reports use for ``method``: ``partial-tau-b`` for
    ``tau-a`` (Kendall's partial τ on τ_b, the standard definition with tied RDMs), else
    ``partial-<method>``."""
    return partial_statistics(method)[0]


def self_concordance(x: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """τ_a of each row of ``x [shape=(R, n)]`` with itself: the fraction of pairs of entries that
    are not tied (1 for a row without ties), ``[shape=(R,)]``.

    With ``weights [shape=(B, n)]`` (integer multiplicities of the entries, as a bootstrap over
    conditions resamples dissimilarities), each entry counts ``w`` times and copies of one entry
    tie with each other, as in rsatoolbox's subsampled comparison: ``[shape=(R, B)]``.
    """
    from scipy import sparse

    x = np.atleast_2d(np.asarray(x))
    n = x.shape[1]
    if weights is None:
        w = np.ones((1, n))
    else:
        w = np.atleast_2d(np.asarray(weights, dtype=float))
    total = w.sum(axis=1)
    pairs = total * (total - 1) / 2.0
    out = np.empty((x.shape[0], w.shape[0]))
    for i, row in enumerate(x):
        _, inv = np.unique(row, return_inverse=True)
        groups = sparse.csr_matrix((np.ones(n), (np.arange(n), inv.ravel())), shape=(n, int(inv.max()) + 1))
        per_group = np.asarray((groups.T @ w.T).T)                     # [B, G]: entries per tie group
        ties = (per_group * (per_group - 1) / 2.0).sum(axis=1)
        out[i] = np.where(pairs > 0, 1.0 - ties / np.where(pairs > 0, pairs, 1.0), np.nan)
    return out[:, 0] if weights is None else out
_TESTS = ("t-test", "permutation")


@dataclass
class RSAResult:
    """Everything one :func:`run_rsa` call computed.

    Attributes
    ----------
    table
        The tidy table (:data:`TABLE_COLUMNS`).
    tests
        Per table row: ``p_t_test`` and ``p_permutation`` (NaN when not computed) and the test used.
    per_subject
        Long table of per-subject values (network, layer, subject, model_rdm, statistic, value).
    rdms
        ``{layer: RDMStack}``.
    model_rdms
        ``{model name: vector [shape=(n_pairs,)]}``.
    config
        The arguments of the run (JSON-serialisable).
    timings
        Seconds per stage.
    """

    table: pd.DataFrame
    tests: pd.DataFrame
    per_subject: pd.DataFrame
    rdms: dict[str, RDMStack]
    model_rdms: dict[str, np.ndarray]
    config: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def conditions(self) -> pd.DataFrame:
        return next(iter(self.rdms.values())).conditions

    def save(self, folder: str | Path) -> list[Path]:
        """Write ``rsa.csv``, ``rsa.parquet``, ``rsa_tests.csv``, ``per_subject.csv`` and ``rdms.npz``."""
        import io

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [
            atomic_write_text(folder / "rsa.csv", self.table.to_csv(index=False, float_format="%.10g")),
            atomic_write_text(folder / "rsa_tests.csv", self.tests.to_csv(index=False, float_format="%.10g")),
            atomic_write_text(folder / "per_subject.csv", self.per_subject.to_csv(index=False, float_format="%.10g")),
        ]
        buf = io.BytesIO()
        try:
            self.table.to_parquet(buf, index=False)
            paths.append(atomic_write_bytes(folder / "rsa.parquet", buf.getvalue()))
        except ImportError:
            logger.warning("pyarrow is not installed: rsa.parquet not written (pip install pyarrow)")
        arrays: dict[str, np.ndarray] = {f"layer/{k}": v.vectors for k, v in self.rdms.items()}
        arrays.update({f"model/{k}": v for k, v in self.model_rdms.items()})
        arrays["subjects"] = np.array(next(iter(self.rdms.values())).subjects)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        paths.append(atomic_write_bytes(folder / "rdms.npz", buf.getvalue()))
        self.conditions.to_csv(buf2 := io.StringIO(), index=False)
        paths.append(atomic_write_text(folder / "conditions.csv", buf2.getvalue()))
        return paths


def check_stimulus_order(metadata: pd.DataFrame, stimulus_ids: Sequence[str] | None) -> None:
    """Raise unless ``stimulus_ids`` lists exactly the metadata's ``stimulus_id`` values in order."""
    if stimulus_ids is None:
        return
    if "stimulus_id" not in metadata.columns:
        raise AnalysisError("the activations carry stimulus ids but the metadata has no 'stimulus_id' column")
    meta_ids = metadata["stimulus_id"].astype(str).tolist()
    act_ids = [str(s) for s in stimulus_ids]
    if act_ids == meta_ids:
        return
    if len(act_ids) != len(meta_ids) or set(act_ids) != set(meta_ids):
        missing = sorted(set(meta_ids) - set(act_ids))[:5]
        extra = sorted(set(act_ids) - set(meta_ids))[:5]
        raise AnalysisError(
            f"the activations' stimulus ids ({len(act_ids)}) do not match the metadata's ({len(meta_ids)}): "
            f"missing from activations {missing}, not in metadata {extra}; extract activations for "
            "this stimulus set"
        )
    first = next(i for i, (a, b) in enumerate(zip(act_ids, meta_ids)) if a != b)
    raise AnalysisError(
        f"the activations' stimulus order differs from the metadata's (first difference at row {first}: "
        f"{act_ids[first]!r} vs {meta_ids[first]!r}); reorder the metadata to the activations' ids "
        "(metadata.set_index('stimulus_id').loc[ids].reset_index())"
    )


def _validate_config(
    *, method: str, test: str, bootstrap_over: str, correction: str, n_permutations: int,
    n_bootstraps: int, alpha: float, ci_level: float,
) -> None:
    COMPARISONS.get(method)
    inference.CORRECTIONS.get(correction)
    if test not in _TESTS:
        raise ConfigError(f"unknown test {test!r}; use one of {_TESTS}")
    if bootstrap_over not in _BOOTSTRAP_OVER:
        raise ConfigError(f"unknown bootstrap_over {bootstrap_over!r}; use one of {_BOOTSTRAP_OVER}")
    if n_permutations < 0 or n_bootstraps < 0:
        raise ConfigError("n_permutations and n_bootstraps must be >= 0")
    if test == "permutation" and n_permutations < 1:
        raise ConfigError("test='permutation' needs n_permutations >= 1 (e.g. 1000)")
    if not 0 < alpha < 1 or not 0 < ci_level < 1:
        raise ConfigError("alpha and ci_level must lie strictly between 0 and 1")


def _subject_mean_weights(counts: np.ndarray | None, n_subj: int, n_boot: int) -> np.ndarray:
    """Weights ``[shape=(B, S)]`` averaging subjects (instrument resample counts / S)."""
    if counts is None:
        return np.full((n_boot, n_subj), 1.0 / n_subj)
    return counts / n_subj


def run_rsa(
    activations: Mapping[str, np.ndarray],
    metadata: pd.DataFrame,
    *,
    network: str = "network",
    models: Sequence[str] = ("pitch_height", "chroma"),
    method: str = "tau-a",
    distance: str = "correlation",
    subject: str | None = "instrument",
    condition: str = "midi",
    stimulus_ids: Sequence[str] | None = None,
    test: str = "t-test",
    n_permutations: int = 1000,
    n_bootstraps: int = 1000,
    bootstrap_over: str = "both",
    correction: str = "bonferroni",
    alpha: float = 0.05,
    ci_level: float = 0.95,
    partial: bool = True,
    regression: bool = True,
    interactions: bool = True,
    best_layer: bool = True,
    seed: int = 0,
    backend: str = "numpy",
    progress: bool = False,
) -> RSAResult:
    """Representational similarity analysis of every layer of one network against model RDMs.

    Parameters
    ----------
    activations
        ``{layer name: pooled activations [shape=(n_stimuli, dim)]}`` in metadata row order.
    metadata
        One row per stimulus (``StimulusSet.metadata``), with the ``subject`` and ``condition``
        columns (and those the model RDMs need: ``midi``, ``pitch_class``...).
    network
        Name written to the ``network`` column.
    models
        Names in :data:`~musiclens.rsa.models.MODEL_RDMS`.
    method
        Comparison method (``tau-a``, ``spearman``, ``rho-a``, ``corr``, ``cosine``).
    distance
        RDM distance (``correlation``, ``cosine``, ``euclidean``, ``sqeuclidean``).
    subject
        Metadata column whose values are the subjects (``None``: one subject).
    condition
        Metadata column defining RDM rows (one stimulus per subject and condition).
    stimulus_ids
        Stimulus ids carried by the activations; must equal ``metadata.stimulus_id`` in order.
    test
        ``"t-test"`` (one-sided, across subjects) or ``"permutation"`` (stimulus labels) for ``p``.
    n_permutations
        Label permutations (0 skips the permutation test).
    n_bootstraps
        Bootstrap resamples for the confidence intervals (0: t intervals).
    bootstrap_over
        ``"instruments"``, ``"pitches"`` or ``"both"``.
    correction
        ``"bonferroni"`` or ``"fdr_bh"``, over layers × model RDMs per statistic.
    alpha
        Significance level for ``significant``.
    ci_level
        Confidence level of the intervals.
    partial, regression, interactions, best_layer
        Which extra statistics to compute.
    seed
        Seed of every random step (permutations, bootstraps); same seed, identical table.
    backend
        ``"numpy"`` (default), ``"torch"`` or ``"auto"`` for the large matrix products.
    progress
        Show tqdm progress bars.

    Returns
    -------
    RSAResult
    """
    _validate_config(method=method, test=test, bootstrap_over=bootstrap_over, correction=correction,
                     n_permutations=n_permutations, n_bootstraps=n_bootstraps, alpha=alpha, ci_level=ci_level)
    if not isinstance(metadata, pd.DataFrame):
        raise ConfigError("metadata must be a pandas DataFrame (e.g. StimulusSet.metadata)")
    if not activations:
        raise AnalysisError("no layers given: activations is empty")
    check_stimulus_order(metadata, stimulus_ids)
    meth = COMPARISONS.get(method)
    models = list(models)
    timer = Timer()
    ss = np.random.SeedSequence(seed)
    perm_seed, boot_seed, ci_seed = ss.spawn(3)

    with timer("rdms"):
        layers = list(activations)
        rdms = {
            layer: subject_rdms(np.asarray(activations[layer]), metadata, subject=subject, condition=condition,
                                distance=distance, what=f"{network} / {layer}")
            for layer in layers
        }
        first = rdms[layers[0]]
        conditions = first.conditions
        n_layers, n_subj, n_pair = len(layers), first.n_subjects, first.vectors.shape[1]
        n_cond = first.n_conditions
        data = np.stack([rdms[layer].vectors for layer in layers])          # [L, S, N]
        mv = model_vectors(models, conditions)                               # [K, N]
        n_models = len(models)
    if test == "t-test" and n_subj < 2:
        raise InsufficientDataError(
            f"only {n_subj} subject ({subject!r}); the t-test across subjects needs at least 2. "
            "Use test='permutation' or subject=None with test='permutation'"
        )
    do_partial = partial and n_models >= 2 and meth.correlation
    if partial and n_models >= 2 and not meth.correlation:
        logger.warning("partial correlations are not defined for method %r; skipped", method)
    do_regression = regression
    use_inter = False
    do_best = best_layer and n_subj >= 2 and n_layers >= 2
    flat = data.reshape(n_layers * n_subj, n_pair)

    with timer("compare"):
        prep: PreparedData = prepare(flat, method=method)
        identity = np.arange(n_pair)[None, :]
        obs = np.stack([permuted_scores(prep, mv[k], identity, backend=backend)[:, 0] for k in range(n_models)],
                       axis=-1)                                            # [L*S, K]
        model_prep = prepare(mv, method=method)
        rmm = np.stack([permuted_scores(model_prep, mv[k], identity)[:, 0] for k in range(n_models)], axis=-1)
        per_subject: dict[tuple[str, str], np.ndarray] = {}                # (statistic, model) -> [L*S]
        for k, name in enumerate(models):
            per_subject[(method, name)] = obs[:, k]
        if do_partial:
            unit = rmm.copy()
            np.fill_diagonal(unit, 1.0)       # textbook: coefficients as they are, unit diagonal
            part = partial_correlations(obs, unit)
            for k, name in enumerate(models):
                per_subject[(f"partial-{method}", name)] = part[:, k]
            if method == "tau-a":             # Kendall's partial τ on τ_b: self-concordances on the diagonal
                data_self = self_concordance(flat)                         # [L*S]; 1 without ties
                part_b = partial_correlations(obs, rmm, data_var=data_self)
                for k, name in enumerate(models):
                    per_subject[("partial-tau-b", name)] = part_b[:, k]
        if do_regression:
            use_inter = interactions and n_models >= 2
            try:
                design, predictors = regression_design(mv, models, interactions=use_inter)
            except AnalysisError:
                if not use_inter:
                    raise
                logger.warning("interaction terms are collinear with the models over these conditions "
                               "(e.g. two octaves only); regression fitted without them")
                use_inter = False
                design, predictors = regression_design(mv, models, interactions=False)
            betas = regress(flat, design)
            for k, name in enumerate(predictors):
                per_subject[(f"beta_{name}", name)] = betas[:, k]
    keys = list(per_subject)

    nulls: dict[tuple[str, str], np.ndarray] = {}                          # key -> [L, P]
    if n_permutations > 0:
        with timer("permutations"):
            perms = inference.condition_permutations(n_cond, n_permutations, seed=perm_seed)
            sigmas = pair_permutations(perms)
            null_obs = np.stack([
                permuted_scores(prep, mv[k], sigmas, backend=backend, progress=progress,
                                desc=f"permutations {models[k]}")
                for k in range(n_models)
            ], axis=1)                                                     # [L*S, K, P]
            for k, name in enumerate(models):
                nulls[(method, name)] = null_obs[:, k, :]
            if do_partial:
                pn = partial_correlations(np.moveaxis(null_obs, 1, -1), unit)   # [L*S, P, K]
                for k, name in enumerate(models):
                    nulls[(f"partial-{method}", name)] = pn[:, :, k]
                if method == "tau-a":   # a permutation moves pairs, so self-concordances do not change
                    pn = partial_correlations(np.moveaxis(null_obs, 1, -1), rmm, data_var=data_self[:, None])
                    for k, name in enumerate(models):
                        nulls[("partial-tau-b", name)] = pn[:, :, k]
            if do_regression:
                bn = regress_permuted(flat, design, sigmas)                    # [L*S, n_pred, P]
                for k, name in enumerate(predictors):
                    nulls[(f"beta_{name}", name)] = bn[:, k, :]
            nulls = {key: v.reshape(n_layers, n_subj, -1).mean(axis=1) for key, v in nulls.items()}

    boots: dict[tuple[str, str], np.ndarray] = {}                          # key -> [L, B]
    n_boot_undefined = 0                                                   # resamples left out of the CIs
    if n_bootstraps > 0:
        with timer("bootstrap"):
            rng = np.random.default_rng(boot_seed)
            subj_counts = (inference.bootstrap_indices(n_subj, n_bootstraps, seed=rng)
                           if bootstrap_over in ("instruments", "both") else None)
            weights = _subject_mean_weights(subj_counts, n_subj, n_bootstraps)  # [B, S]
            if bootstrap_over == "instruments":
                for key in keys:
                    v = per_subject[key].reshape(n_layers, n_subj)
                    boots[key] = v @ weights.T
            else:
                cond_counts = inference.bootstrap_indices(n_cond, n_bootstraps, seed=rng)
                w = condition_weights(cond_counts)
                usable = ~_constant_on_resample(mv, w)     # a constant model RDM: nothing is defined
                n_boot_undefined = int((~usable).sum())
                if n_boot_undefined:
                    if usable.sum() < 2:
                        raise InsufficientDataError(
                            f"{n_boot_undefined} of {n_bootstraps} bootstrap resamples of the {n_cond} conditions "
                            "leave a model RDM constant, so no interval can be formed; use more conditions or "
                            "bootstrap_over='instruments' (--bootstrap-over instruments)")
                    logger.warning("%s: %d of %d bootstrap resamples of the conditions leave a model RDM constant "
                                   "(no statistic is defined there); the intervals come from the other %d "
                                   "(column n_boot_undefined)", network, n_boot_undefined, n_bootstraps,
                                   int(usable.sum()))
                    w, weights = w[usable], weights[usable]
                bs = np.stack([weighted_scores(prep, mv[k], w, backend=backend, progress=progress,
                                               desc=f"bootstrap {models[k]}") for k in range(n_models)],
                              axis=1)                                      # [L*S, K, B]
                sub: dict[tuple[str, str], np.ndarray] = {(method, n): bs[:, k, :] for k, n in enumerate(models)}
                if do_partial:
                    rb = np.stack([weighted_scores(model_prep, mv[k], w) for k in range(n_models)], axis=1)
                    rb = np.moveaxis(rb, -1, 0)                            # [B, K, K]
                    rb_unit = rb.copy()
                    rb_unit[:, np.arange(n_models), np.arange(n_models)] = 1.0
                    pb = partial_correlations(np.moveaxis(bs, 1, -1), rb_unit)  # [L*S, B, K]
                    for k, name in enumerate(models):
                        sub[(f"partial-{method}", name)] = pb[:, :, k]
                    if method == "tau-a":
                        # the models' weighted self-concordances are on rb's diagonal; the data's
                        # are computed with the same multiplicities
                        pb = partial_correlations(np.moveaxis(bs, 1, -1), rb, data_var=self_concordance(flat, w))
                        for k, name in enumerate(models):
                            sub[("partial-tau-b", name)] = pb[:, :, k]
                if do_regression:
                    rw = regress_weighted(flat, mv, models, w, interactions=use_inter)
                    for k, name in enumerate(predictors):
                        sub[(f"beta_{name}", name)] = rw[:, k, :]
                for key, v in sub.items():
                    boots[key] = np.einsum("lsb,bs->lb", v.reshape(n_layers, n_subj, -1), weights)

    ceilings: dict[str, tuple[float, float]] = {}
    if n_subj >= 2:
        with timer("noise_ceiling"):
            for li, layer in enumerate(layers):
                ceilings[layer] = inference.noise_ceiling(data[li], method=method)
    else:
        logger.warning("one subject only: the noise ceiling needs at least 2 subjects and is not computed "
                       "(the table's noise-ceiling columns are empty; its 'note' column says why)")
    no_ceiling = (f"noise ceiling not computed: {n_subj} subject ({subject or 'none'}); it needs at least 2"
                  if n_subj < 2 else "")

    with timer("table"):
        rows: list[dict[str, Any]] = []
        tests_rows: list[dict[str, Any]] = []
        ps_rows: list[dict[str, Any]] = []
        ci_rng = np.random.default_rng(ci_seed)
        for key in keys:
            stat, model = key
            v = per_subject[key].reshape(n_layers, n_subj)
            value = v.mean(axis=1)
            p_t = _t_p(v, required=test == "t-test")
            p_perm = inference.permutation_p(value, nulls[key]) if key in nulls else np.full(n_layers, np.nan)
            nan_boots = np.isnan(boots[key]).sum(axis=-1) if key in boots else np.zeros(n_layers, dtype=int)
            if nan_boots.any():
                logger.warning("%s %s/%s: %d of %d bootstrap resamples leave it undefined (collinear predictors); "
                               "the interval comes from the rest (column n_boot_undefined)", network, stat, model,
                               int(nan_boots.max()), boots[key].shape[-1])
            if key in boots:
                lo, hi = inference.percentile_ci(boots[key], level=ci_level)
            else:
                lo, hi = _t_interval(v, ci_level)
            for li, layer in enumerate(layers):
                nc = ceilings.get(layer, (np.nan, np.nan)) if stat == method else (np.nan, np.nan)
                rows.append(dict(network=network, layer=layer, model_rdm=model, statistic=stat,
                                 value=value[li], ci_low=lo[li], ci_high=hi[li],
                                 p=p_t[li] if test == "t-test" else p_perm[li],
                                 noise_ceiling_low=nc[0], noise_ceiling_high=nc[1],
                                 note=no_ceiling if stat == method else "",
                                 n_boot_undefined=(n_boot_undefined + int(nan_boots[li])) if key in boots else 0))
                tests_rows.append(dict(network=network, layer=layer, model_rdm=model, statistic=stat,
                                       test=test, p_t_test=p_t[li], p_permutation=p_perm[li]))
                for si, s in enumerate(first.subjects):
                    ps_rows.append(dict(network=network, layer=layer, subject=s, model_rdm=model,
                                        statistic=stat, value=v[li, si]))
        if do_best:
            for key in keys:
                stat, model = key
                if stat.startswith("beta_"):
                    continue
                v = per_subject[key].reshape(n_layers, n_subj)
                res = inference.best_layer_cv(v)
                layer = layers[res.mode]
                held = res.held_out
                p_t = float(_t_p(held[None, :], required=False)[0])
                if np.isnan(p_t):
                    logger.warning("best layer for %s / %s skipped: held-out scores have no variance", stat, model)
                    continue
                boot = _bootstrap_means(held, n_bootstraps, ci_rng) if n_bootstraps > 0 else None
                lo, hi = (inference.percentile_ci(boot, level=ci_level) if boot is not None
                          else _t_interval(held[None, :], ci_level))
                nc = ceilings.get(layer, (np.nan, np.nan)) if stat == method else (np.nan, np.nan)
                rows.append(dict(network=network, layer=layer, model_rdm=model,
                                 statistic=f"{stat}-best-layer-cv", value=float(held.mean()),
                                 ci_low=float(np.ravel(lo)[0]), ci_high=float(np.ravel(hi)[0]), p=p_t,
                                 noise_ceiling_low=nc[0], noise_ceiling_high=nc[1], note="",
                                 n_boot_undefined=0))
                tests_rows.append(dict(network=network, layer=layer, model_rdm=model,
                                       statistic=f"{stat}-best-layer-cv", test="t-test", p_t_test=p_t,
                                       p_permutation=np.nan))
                for si, s in enumerate(first.subjects):
                    ps_rows.append(dict(network=network, layer=layers[res.chosen[si]], subject=s,
                                        model_rdm=model, statistic=f"{stat}-best-layer-cv", value=held[si]))
        table = pd.DataFrame(rows)
        table["p_corrected"] = np.nan
        for stat, idx in table.groupby("statistic").groups.items():
            table.loc[idx, "p_corrected"] = inference.correct(table.loc[idx, "p"].to_numpy(float), method=correction)
        table["significant"] = table["p_corrected"] < alpha
        table = table[list(TABLE_COLUMNS)]
        _check_no_nan(table)
        tests_df = pd.DataFrame(tests_rows)
        per_subject_df = pd.DataFrame(ps_rows)

    config = dict(network=network, models=models, method=method, distance=distance, subject=subject,
                  condition=condition, test=test, n_permutations=n_permutations, n_bootstraps=n_bootstraps,
                  bootstrap_over=bootstrap_over, correction=correction, alpha=alpha, ci_level=ci_level,
                  partial=do_partial, regression=do_regression,
                  interactions=bool(do_regression and use_inter),
                  best_layer=do_best, seed=seed, backend=backend, layers=layers,
                  subjects=list(first.subjects), n_conditions=n_cond, n_boot_undefined=n_boot_undefined)
    logger.info("RSA of %s: %d layers x %d subjects x %d models in %.2f s", network, n_layers, n_subj,
                n_models, sum(timer.seconds.values()))
    return RSAResult(table=table, tests=tests_df, per_subject=per_subject_df, rdms=rdms,
                     model_rdms={n: mv[k] for k, n in enumerate(models)}, config=config,
                     timings=dict(timer.seconds))


def _t_p(v: np.ndarray, *, required: bool) -> np.ndarray:
    """t-test p per layer; when it is not the chosen test and undefined, NaN (kept out of ``table``)."""
    try:
        return inference.t_test_greater(v, axis=1)
    except InsufficientDataError:
        if required:
            raise
        return np.full(v.shape[0], np.nan)


def _t_interval(v: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    n = v.shape[1]
    if n < 2:
        raise InsufficientDataError("a confidence interval needs n_bootstraps > 0 or at least 2 subjects")
    se = v.std(axis=1, ddof=1) / np.sqrt(n)
    half = stats.t.ppf(0.5 + level / 2, n - 1) * se
    m = v.mean(axis=1)
    return m - half, m + half


def _constant_on_resample(models: np.ndarray, weights: np.ndarray, chunk: int = 256) -> np.ndarray:
    """``[shape=(B,)]``: whether some model RDM ``models [shape=(K, N)]`` is constant over the pairs a
    resample keeps (``weights [shape=(B, N)] > 0``), or the resample keeps no pair at all."""
    out = np.zeros(weights.shape[0], dtype=bool)
    for s in range(0, weights.shape[0], chunk):
        kept = weights[s:s + chunk] > 0
        out[s:s + chunk] |= ~kept.any(axis=1)
        for m in np.atleast_2d(models):
            lo = np.where(kept, m[None, :], np.inf).min(axis=1)
            hi = np.where(kept, m[None, :], -np.inf).max(axis=1)
            out[s:s + chunk] |= lo == hi
    return out


def _bootstrap_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    counts = inference.bootstrap_indices(values.size, n_boot, seed=rng)
    return (counts @ values) / values.size


def _check_no_nan(table: pd.DataFrame) -> None:
    cols = ["value", "ci_low", "ci_high", "p", "p_corrected"]
    bad = table[cols].isna().any(axis=1)
    if bad.any():
        first = table[bad].iloc[0]
        raise AnalysisError(
            f"{int(bad.sum())} result row(s) contain NaN (first: layer {first['layer']!r}, model "
            f"{first['model_rdm']!r}, statistic {first['statistic']!r}); the input produced undefined "
            "statistics, check for degenerate RDMs or too few subjects"
        )
