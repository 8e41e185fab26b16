"""Benchmark: evaluating candidate RDMs against measured RDMs, musiclens vs rsatoolbox, same resamples.

Workload (issue 18): 100 stimuli, 20 subjects' measured RDMs, 50 candidate RDMs (layers), the
``corr`` comparison, rsatoolbox's dual bootstrap (``eval_dual_bootstrap`` with k_pattern =
k_rdm = 1: each resample evaluated resampling both factors, subjects only and stimuli only, noise
ceiling on each) — the same evaluation a user of rsatoolbox runs to pick the best layer.

rsatoolbox draws its own resamples; its ``bootstrap_sample`` is wrapped to record them, and
musiclens evaluates exactly those resamples, so every number is compared (largest absolute
difference printed).  rsatoolbox runs ``--n-ref`` resamples (it is slow); musiclens runs the same
resamples, and then ``--n-full`` of its own; the ratio is per resample, in one run.

Run:  OPENBLAS_NUM_THREADS=1 python benchmarks/bench_targets.py [--quick]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stimuli", type=int, default=100)
    ap.add_argument("--subjects", type=int, default=20)
    ap.add_argument("--candidates", type=int, default=50)
    ap.add_argument("--n-ref", type=int, default=10, help="resamples for rsatoolbox (slow)")
    ap.add_argument("--n-full", type=int, default=1000, help="resamples for musiclens alone")
    ap.add_argument("--method", default="corr")
    ap.add_argument("--quick", action="store_true", help="40 stimuli, 8 subjects, 10 candidates")
    args = ap.parse_args()
    if args.quick:
        args.stimuli, args.subjects, args.candidates, args.n_ref, args.n_full = 40, 8, 10, 5, 200

    import rsatoolbox
    from rsatoolbox.inference import evaluate as rsa_eval

    from musiclens.rsa.evaluate import Resamples, evaluate_targets
    from musiclens.rsa.targets import TargetRDMs

    rng = np.random.default_rng(0)
    n_pairs = args.stimuli * (args.stimuli - 1) // 2
    truth = rng.random(n_pairs)
    data = np.stack([truth + rng.random(n_pairs) for _ in range(args.subjects)])
    weights = np.linspace(0, 1, args.candidates)
    cands = weights[:, None] * truth[None] + rng.random((args.candidates, n_pairs))
    names = [f"layer_{k:02d}" for k in range(args.candidates)]
    target = TargetRDMs("bench", [f"s{i}" for i in range(args.stimuli)], [f"p{i}" for i in range(args.subjects)], data)

    models = [rsatoolbox.model.ModelFixed(n, rsatoolbox.rdm.RDMs(c[None])) for n, c in zip(names, cands)]
    rdms = rsatoolbox.rdm.RDMs(data)
    record: list = []
    orig = rsa_eval.bootstrap_sample

    def wrapped(*a, **k):
        out = orig(*a, **k)
        record.append(out[1:])
        return out

    rsa_eval.bootstrap_sample = wrapped
    np.random.seed(1)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = rsa_eval.eval_dual_bootstrap(models, rdms, method=args.method, N=args.n_ref, k_pattern=1, k_rdm=1)
    t_ref = time.perf_counter() - t0
    rsa_eval.bootstrap_sample = orig
    res = Resamples(np.stack([r[0] for r in record]), np.stack([r[1] for r in record]))

    t0 = time.perf_counter()
    mine = evaluate_targets(cands, names, target, method=args.method, bootstrap="dual", resamples=res)
    t_same = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = evaluate_targets(cands, names, target, method=args.method, bootstrap="dual", n_bootstraps=args.n_full, seed=0)
    t_full = time.perf_counter() - t0

    d_eval = float(np.nanmax(np.abs(mine.evaluations - ref.evaluations[:, :, 0, 0, :])))
    d_nc = float(np.nanmax(np.abs(mine.noise_ceiling - ref.noise_ceiling[:, :, 0, :])))
    d_p = float(np.nanmax(np.abs(mine.table["p_zero"].to_numpy() - ref.test_zero())))
    per_ref = t_ref / args.n_ref
    per_same = t_same / args.n_ref
    per_full = t_full / args.n_full
    print(f"workload: {args.stimuli} stimuli x {args.subjects} subjects x {args.candidates} candidates, "
          f"{args.method}, dual bootstrap")
    print(f"rsatoolbox eval_dual_bootstrap: {args.n_ref} resamples in {t_ref:.2f} s ({per_ref * 1e3:.1f} ms/resample)")
    print(f"musiclens, same resamples:      {args.n_ref} resamples in {t_same:.3f} s ({per_same * 1e3:.2f} ms/resample)")
    print(f"musiclens, {args.n_full} resamples:        {t_full:.2f} s ({per_full * 1e3:.2f} ms/resample)")
    print(f"ratio rsatoolbox / musiclens per resample: {per_ref / per_same:.0f}x (same resamples), "
          f"{per_ref / per_full:.0f}x (against the {args.n_full}-resample run)")
    print(f"largest differences on the same resamples: evaluations {d_eval:.2e}, noise ceilings {d_nc:.2e}, "
          f"p_zero {d_p:.2e}")
    print(f"best candidate: {full.table.loc[full.table['best'], 'candidate'].item()} "
          f"(true: layer_{args.candidates - 1:02d}); noise ceiling {full.noise_ceiling_fixed[0]:.3f}-"
          f"{full.noise_ceiling_fixed[1]:.3f}")


if __name__ == "__main__":
    main()
