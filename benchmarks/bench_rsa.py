"""Benchmark: musiclens RSA vs rsatoolbox on the same data, in the same run.

Workload (full mode, issue 5): 1,080 stimuli (30 instruments x 36 pitches, MIDI 60-95), 13 layers
x 768 dims, 2 model RDMs (pitch_height, chroma), tau-a, 10,000 stimulus-label permutations,
1,000 dual bootstraps (instruments and pitches), noise ceiling.  ``--quick`` shrinks it.

rsatoolbox runs the same statistics through its public API (``calc_rdm``, ``compare``,
``boot_noise_ceiling``, ``RDMs.subsample_pattern``) with the *same* permutations and bootstrap
resamples.  Its permutation and bootstrap stages are timed on a subset (``--rsa-subset``) and
extrapolated linearly to the full counts; the output says so.  Differences are reported on every
point statistic both compute (RDMs, layer means, noise ceilings, each permuted and each bootstrap
value of the subset) and p-values on the subset are checked for identity.

A second reference times rsatoolbox the way its documentation drives inference — one
``eval_fixed`` call per layer and permuted model set (rsatoolbox has no label-permutation test of
its own), one ``eval_bootstrap_pattern`` per layer for the bootstrap (it resamples pitches only;
ours resamples instruments and pitches at once, so this stage does slightly less work) — on a
few resamples, extrapolated linearly; its ``eval_fixed`` values are checked against ours.  Both
ratios are printed: the first reference is the fastest rsatoolbox code we could write, the
second is rsatoolbox's inference API as users call it.

Run:  python benchmarks/bench_rsa.py --quick      (or without --quick for the full workload)
      python benchmarks/bench_rsa.py --quick --backend torch   (also times the NumPy path: both backends,
                                                                their ratio and largest table difference)

On a machine shared with other jobs, OpenBLAS's worker threads contend badly; run with
``OPENBLAS_NUM_THREADS=1`` (both libraries then use one core) for stable numbers.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd


def make_data(n_layers: int, dim: int, seed: int) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rows = [dict(stimulus_id=f"i{k:02d}_{m}", midi=m, pitch_class=m % 12, octave=m // 12 - 1,
                 instrument=f"i{k:02d}", family=f"f{k % 3}") for k in range(30) for m in range(60, 96)]
    meta = pd.DataFrame(rows)
    z_h = (meta["midi"].to_numpy(float)[:, None] - 77.5) / 10
    layers = {}
    for li in range(n_layers):
        chroma_w, height_w = li / max(1, n_layers - 1), 1.0 - 0.5 * li / max(1, n_layers - 1)
        pc = rng.normal(size=(12, dim))[meta["pitch_class"].to_numpy()]
        inst = rng.normal(size=(30, dim))[np.repeat(np.arange(30), 36)]
        layers[f"layer_{li:02d}"] = (chroma_w * pc + height_w * z_h * rng.normal(size=(1, dim)) + 0.5 * inst
                                     + 1.5 * rng.normal(size=(len(meta), dim)))
    return layers, meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small workload (4 layers x 128 dims, 500 perms, 100 boots)")
    ap.add_argument("--rsa-subset", type=int, default=None, help="permutations/bootstraps run through rsatoolbox")
    ap.add_argument("--backend", default="numpy", help="musiclens backend: numpy, torch or auto")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import rsatoolbox
    from rsatoolbox.inference import boot_noise_ceiling
    from rsatoolbox.rdm import RDMs, compare as rs_compare

    from musiclens.rsa import inference, run_rsa
    from musiclens.rsa.batched import condition_weights, pair_permutations, permuted_scores, prepare, weighted_scores

    n_layers, dim, n_perm, n_boot = (4, 128, 500, 100) if args.quick else (13, 768, 10_000, 1_000)
    subset = args.rsa_subset or (5 if args.quick else 10)
    layers, meta = make_data(n_layers, dim, args.seed)
    models = ["pitch_height", "chroma"]
    print(f"workload: {len(meta)} stimuli (30 instruments x 36 pitches), {n_layers} layers x {dim} dims, "
          f"{len(models)} model RDMs, tau-a, {n_perm} permutations, {n_boot} bootstraps (instruments+pitches), "
          "noise ceiling")
    print("note: shared 2-core machine, timings are noisy")

    # ---------------------------------------------------------------- musiclens
    if args.backend != "numpy":   # import torch and touch the device before anything is timed
        from musiclens.rsa.batched import get_backend

        get_backend(args.backend).matmul_t(np.ones((4, 4), np.float32), np.ones((4, 4), np.float32))
    t0 = time.perf_counter()
    res = run_rsa(layers, meta, models=models, method="tau-a", test="permutation", n_permutations=n_perm,
                  n_bootstraps=n_boot, bootstrap_over="both", partial=False, regression=False,
                  best_layer=False, seed=args.seed, backend=args.backend)
    t_ml = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_rsa(layers, meta, models=models, method="tau-a", test="permutation", n_permutations=n_perm,
            n_bootstraps=n_boot, bootstrap_over="both", seed=args.seed, backend=args.backend)
    t_ml_all = time.perf_counter() - t0
    print(f"musiclens ({args.backend} backend): {t_ml:.1f} s  (stages: "
          + ", ".join(f"{k} {v:.1f}" for k, v in res.timings.items()) + ")")
    print(f"musiclens with partial tau-a, regression and CV best layer as well: {t_ml_all:.1f} s")
    if args.backend != "numpy":   # both backends, same workload, same run: timings and agreement
        from musiclens.rsa.batched import get_backend

        device = getattr(get_backend(args.backend), "device", "cpu")
        t0 = time.perf_counter()
        ref = run_rsa(layers, meta, models=models, method="tau-a", test="permutation", n_permutations=n_perm,
                      n_bootstraps=n_boot, bootstrap_over="both", partial=False, regression=False,
                      best_layer=False, seed=args.seed, backend="numpy")
        t_np = time.perf_counter() - t0
        num = ref.table.select_dtypes("number").columns
        gap = float(np.nanmax(np.abs(ref.table[num].to_numpy(float) - res.table[num].to_numpy(float))))
        print(f"backends: numpy {t_np:.1f} s, {args.backend} (device {device}) {t_ml:.1f} s, "
              f"numpy / {args.backend} = {t_np / t_ml:.2f}x; largest |table difference| {gap:.3g}")

    # same resamples as run_rsa (it spawns perm/boot seeds from SeedSequence(seed), in this order)
    perm_seed, boot_seed, _ = np.random.SeedSequence(args.seed).spawn(3)
    perms = inference.condition_permutations(36, n_perm, seed=perm_seed)
    rng = np.random.default_rng(boot_seed)
    subj_counts = inference.bootstrap_indices(30, n_boot, seed=rng)
    cond_counts = inference.bootstrap_indices(36, n_boot, seed=rng)

    # ---------------------------------------------------------------- rsatoolbox
    diffs: dict[str, float] = {}
    timing: dict[str, float] = {}
    order = np.argsort(meta["midi"].to_numpy(), kind="stable")
    t0 = time.perf_counter()
    rs_layers = {}
    for name, x in layers.items():
        vecs = []
        for k in range(30):
            rows = np.arange(k * 36, (k + 1) * 36)
            ds = rsatoolbox.data.Dataset(x[rows])
            vecs.append(rsatoolbox.rdm.calc_rdm(ds, method="correlation").get_vectors()[0])
        rs_layers[name] = RDMs(np.stack(vecs))
    timing["rdms"] = time.perf_counter() - t0
    del order
    diffs["RDM entries"] = max(float(np.abs(rs_layers[n].get_vectors() - res.rdms[n].vectors).max()) for n in layers)
    model_rdms = {m: RDMs(res.model_rdms[m][None]) for m in models}
    table = res.table.set_index(["layer", "model_rdm"])
    t0 = time.perf_counter()
    d = 0.0
    for name in layers:
        for m in models:
            v = rs_compare(rs_layers[name], model_rdms[m], method="tau-a").mean()
            d = max(d, abs(v - table.loc[(name, m), "value"]))
    timing["compare"] = time.perf_counter() - t0
    diffs["layer mean tau-a"] = d
    t0 = time.perf_counter()
    d = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in layers:
            lo, hi = boot_noise_ceiling(rs_layers[name], method="tau-a")
            row = table.loc[(name, models[0])]
            d = max(d, abs(lo - row["noise_ceiling_low"]), abs(hi - row["noise_ceiling_high"]))
    timing["noise ceiling"] = time.perf_counter() - t0
    diffs["noise ceiling bounds"] = d

    all_data = RDMs(np.concatenate([rs_layers[n].get_vectors() for n in layers]))
    prep = prepare(all_data.get_vectors(), method="tau-a")
    sig = pair_permutations(perms[:subset])
    t0 = time.perf_counter()
    rs_null = np.empty((len(models), n_layers, subset))
    for k in range(subset):
        p = perms[k]
        for mi, m in enumerate(models):
            mat = model_rdms[m].get_matrices()[0][np.ix_(p, p)]
            rs_null[mi, :, k] = rs_compare(all_data, RDMs(mat[None]), method="tau-a")[:, 0].reshape(n_layers, 30).mean(1)
    timing["permutations"] = (time.perf_counter() - t0) * n_perm / subset
    ml_null = np.stack([permuted_scores(prep, res.model_rdms[m], sig).reshape(n_layers, 30, -1).mean(1)
                        for m in models])
    diffs["permuted layer tau-a (subset)"] = float(np.abs(ml_null - rs_null).max())
    obs = np.array([[table.loc[(n, m), "value"] for n in layers] for m in models])
    p_same = np.array_equal(inference.permutation_p(obs, ml_null), inference.permutation_p(obs, rs_null))

    w = condition_weights(cond_counts[:subset])
    t0 = time.perf_counter()
    rs_boot = np.empty((len(models), n_layers, subset))
    for b in range(subset):
        idx = np.repeat(np.arange(36), cond_counts[b])
        sub_data = all_data.subsample_pattern("index", idx)
        for mi, m in enumerate(models):
            s = rs_compare(sub_data, model_rdms[m].subsample_pattern("index", idx), method="tau-a")[:, 0]
            rs_boot[mi, :, b] = s.reshape(n_layers, 30) @ subj_counts[b] / 30
    timing["bootstrap"] = (time.perf_counter() - t0) * n_boot / subset
    ml_boot = np.stack([np.einsum("lsb,bs->lb", weighted_scores(prep, res.model_rdms[m], w).reshape(n_layers, 30, -1),
                                  subj_counts[:subset] / 30) for m in models])
    diffs["bootstrap layer tau-a (subset)"] = float(np.abs(ml_boot - rs_boot).max())

    # ------------------------------------------- rsatoolbox's user-facing inference functions
    from rsatoolbox.inference import eval_bootstrap_pattern, eval_fixed
    from rsatoolbox.model import ModelFixed

    api_subset = max(2, subset // 2)
    fixed_models = [ModelFixed(m, res.model_rdms[m]) for m in models]
    n_cond = 36
    iu = np.triu_indices(n_cond, 1)
    mats = {m: model_rdms[m].get_matrices()[0] for m in models}
    api: dict[str, float] = {}
    d_api = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        for li, name in enumerate(layers):
            r = eval_fixed(fixed_models, rs_layers[name], method="tau-a")
            means = np.asarray(r.evaluations).reshape(len(models), -1).mean(1)
            for mi, m in enumerate(models):
                d_api = max(d_api, abs(means[mi] - table.loc[(name, m), "value"]))
        api["fixed"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for k in range(api_subset):
            p = perms[k]
            permuted = [ModelFixed(m, mats[m][np.ix_(p, p)][iu]) for m in models]
            for name in layers:
                eval_fixed(permuted, rs_layers[name], method="tau-a")
        api["permutations"] = (time.perf_counter() - t0) * n_perm / api_subset
        t0 = time.perf_counter()
        for name in layers:
            data = rs_layers[name]
            data.pattern_descriptors["index"] = np.arange(n_cond)
            eval_bootstrap_pattern(fixed_models, data, method="tau-a", N=api_subset)
        api["bootstrap"] = (time.perf_counter() - t0) * n_boot / api_subset
    diffs["eval_fixed layer mean tau-a"] = d_api
    t_api = sum(api.values()) + timing["rdms"] + timing["noise ceiling"]

    t_rs = sum(timing.values())
    print(f"rsatoolbox: {t_rs:.1f} s  (stages: " + ", ".join(f"{k} {v:.1f}" for k, v in timing.items()) + ")")
    print(f"  permutation and bootstrap stages timed on {subset} of {n_perm} permutations / {n_boot} bootstraps "
          "and extrapolated linearly")
    print(f"speed ratio (rsatoolbox / musiclens, same statistics): {t_rs / t_ml:.0f}x")
    print(f"rsatoolbox inference API (calc_rdm, eval_fixed per permutation, eval_bootstrap_pattern, "
          f"boot_noise_ceiling): {t_api:.1f} s  (stages: " + ", ".join(f"{k} {v:.1f}" for k, v in api.items())
          + f"; permutations and bootstraps timed on {api_subset} and extrapolated linearly)")
    print(f"speed ratio (rsatoolbox inference API / musiclens): {t_api / t_ml:.0f}x")
    for k, v in diffs.items():
        print(f"  max |difference| {k:<34} {v:.3g}")
    print(f"largest absolute difference: {max(diffs.values()):.3g}")
    print(f"permutation p-values identical on the subset: {p_same}")


if __name__ == "__main__":
    main()
