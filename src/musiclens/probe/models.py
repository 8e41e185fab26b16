"""Probe heads in torch and their training: linear, one-hidden-layer MLP, weighted layer sum.

- ``linear``: one ``nn.Linear(dim, n_outputs)`` (CoJEPA / ViT-1D probing, PAPERS.md §2.6).
- ``mlp``: ``Linear(dim, 512) -> ReLU -> Dropout(0.2) -> Linear(512, n_outputs)`` (MARBLE's
  constrained-track head, §4.2).
- weighted layer sum: inputs ``[n, n_layers, dim]``, each layer standardised on the training
  split, mixed by ``softmax(w)`` with one learnable ``w`` per layer (initialised equal), then
  the head (s3prl ``Featurizer``, MARBLE ``normalized_weight_sum``, §5).

Training (:func:`fit_probe`): features standardised with the training split's mean and
standard deviation only; Adam; minibatches (``batch_size`` 64 as in MARBLE) reshuffled every
epoch by a seeded generator; for each learning rate of the grid, at most ``max_epochs`` epochs
with early stopping after ``patience`` epochs without a better validation score; the best
checkpoint by validation score (ties broken by the validation loss) is kept, and the learning rate whose best checkpoint scores
highest on validation wins.  ``torch.manual_seed(seed)`` fixes the initialisation: the same
inputs and seed give the same probe.

Default learning-rate grids (a fast subset of MARBLE's ``{5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2}``
suited to standardised features): :data:`DEFAULT_LRS`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from musiclens.errors import ConfigError, TrainingError
from musiclens.registry import Registry

__all__ = ["PROBES", "DEFAULT_LRS", "ProbeNet", "FittedProbe", "fit_probe", "standardize_stats"]

logger = logging.getLogger(__name__)

#: Learning-rate grid per probe head.
DEFAULT_LRS: dict[str, tuple[float, ...]] = {"linear": (1e-3, 5e-3), "mlp": (5e-4, 1e-3)}

#: Probe heads: ``PROBES.get(name)(dim, n_outputs, hidden=..., dropout=...) -> nn.Module``.
PROBES: Registry[Callable[..., nn.Module]] = Registry("probe head")


@PROBES.register("linear")
def _linear(dim: int, n_outputs: int, *, hidden: int = 512, dropout: float = 0.2) -> nn.Module:
    """A single linear layer (CoJEPA / ViT-1D probing)."""
    return nn.Linear(dim, n_outputs)


@PROBES.register("mlp")
def _mlp(dim: int, n_outputs: int, *, hidden: int = 512, dropout: float = 0.2) -> nn.Module:
    """One hidden layer of 512 ReLU units with dropout 0.2 (MARBLE)."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_outputs))


class ProbeNet(nn.Module):
    """A probe head, optionally behind a softmax-weighted sum over layers.

    Parameters
    ----------
    dim
        Feature width.
    n_outputs
        Classes (multiclass) or labels (multilabel).
    n_layers
        ``None`` for one layer's features ``[batch, dim]``; else inputs are ``[batch, n_layers,
        dim]`` mixed by ``softmax(layer_logits)``.
    head
        Name in :data:`PROBES`.
    """

    def __init__(self, dim: int, n_outputs: int, *, n_layers: int | None = None, head: str = "linear",
                 hidden: int = 512, dropout: float = 0.2) -> None:
        super().__init__()
        self.n_layers = n_layers
        self.layer_logits = nn.Parameter(torch.zeros(n_layers)) if n_layers else None
        self.head = PROBES.get(head)(dim, n_outputs, hidden=hidden, dropout=dropout)

    def layer_weights(self) -> torch.Tensor | None:
        """``softmax`` layer weights ``[shape=(n_layers,)]`` or ``None``."""
        return None if self.layer_logits is None else torch.softmax(self.layer_logits, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, dim] or [B, L, dim] -> [B, n_outputs]
        if self.layer_logits is not None:
            x = torch.einsum("l,bld->bd", torch.softmax(self.layer_logits, dim=0), x)
        return self.head(x)


def standardize_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over examples (axis 0), per feature (and per layer).

    Constant features get a standard deviation of 1 (they stay 0 after centring).
    """
    mean = x.mean(axis=0, dtype=np.float64)
    std = x.std(axis=0, dtype=np.float64)
    std = np.where(std > 1e-8 * max(1.0, float(np.abs(mean).max(initial=0.0))), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


@dataclass
class FittedProbe:
    """A trained probe with its standardisation and selection record.

    Attributes
    ----------
    model
        The best checkpoint (eval mode).
    mean, std
        Training-split standardisation, ``[shape=(dim,)]`` or ``[shape=(n_layers, dim)]``.
    kind
        ``"multiclass"`` or ``"multilabel"``.
    lr
        Chosen learning rate.
    best_epoch
        Epoch of the kept checkpoint (1-based).
    val_score
        Validation score of the kept checkpoint.
    grid
        Per learning rate: ``{"lr", "val_score", "best_epoch", "epochs"}``.
    """

    model: ProbeNet
    mean: np.ndarray
    std: np.ndarray
    kind: str
    lr: float
    best_epoch: int
    val_score: float
    grid: list[dict[str, Any]] = field(default_factory=list)

    def predict(self, x: np.ndarray, *, batch_size: int = 8192) -> np.ndarray:
        """Probabilities ``[shape=(n, n_outputs)]`` (softmax or sigmoid)."""
        return _predict(self.model, (np.asarray(x, dtype=np.float32) - self.mean) / self.std, self.kind, batch_size)

    def layer_weights(self) -> np.ndarray | None:
        w = self.model.layer_weights()
        return None if w is None else w.detach().cpu().numpy().astype(np.float64)


def _predict(model: nn.Module, x: np.ndarray, kind: str, batch_size: int) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for lo in range(0, len(x), batch_size):
            logits = model(torch.from_numpy(np.ascontiguousarray(x[lo:lo + batch_size])))
            out.append((torch.softmax(logits, 1) if kind == "multiclass" else torch.sigmoid(logits)).numpy())
    return np.concatenate(out, axis=0).astype(np.float64) if out else np.zeros((0, 0))


def fit_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    kind: str,
    n_outputs: int,
    probe: str = "linear",
    lrs: Sequence[float] | None = None,
    max_epochs: int = 100,
    patience: int = 10,
    batch_size: int = 64,
    hidden: int = 512,
    dropout: float = 0.2,
    weight_decay: float = 0.0,
    val_score: Callable[[np.ndarray], float] | None = None,
    score_every_epoch: bool = True,
    seed: int = 0,
    num_threads: int | None = 1,
) -> FittedProbe:
    """Train a probe with a learning-rate grid and early stopping on the validation split.

    Parameters
    ----------
    x_train, x_val
        ``[shape=(n, dim)]`` one layer, or ``[shape=(n, n_layers, dim)]`` for the weighted sum.
    y_train, y_val
        Multiclass: ``[shape=(n,)]`` class indices.  Multilabel: ``[shape=(n, n_outputs)]`` 0/1.
    kind
        ``"multiclass"`` or ``"multilabel"``.
    n_outputs
        Output units.
    probe
        Head name in :data:`PROBES`.
    lrs
        Learning-rate grid; default :data:`DEFAULT_LRS` of the head.
    max_epochs, patience, batch_size, hidden, dropout, weight_decay
        Training settings (MARBLE: patience 10, batch 64, hidden 512, dropout 0.2).
    val_score
        ``f(probabilities [n_val, n_outputs]) -> float``, higher is better (the task's primary
        metric on validation).  ``None``: minus the validation loss.
    score_every_epoch
        Checkpoint by ``val_score`` every epoch (``True``), or by validation loss with
        ``val_score`` evaluated once per learning rate on its best checkpoint (for metrics too
        slow to run every epoch, e.g. mir_eval frame metrics).
    seed
        Seed of initialisation and minibatch order.
    num_threads
        torch intra-op threads while training (restored afterwards).  Probe matrices are small,
        and one thread is fastest (measured 40x faster than 2 busy threads on 768-d features);
        ``None`` keeps torch's setting.

    Raises
    ------
    TrainingError
        The loss became non-finite for every learning rate.
    """
    if kind not in ("multiclass", "multilabel"):
        raise ConfigError(f"kind must be 'multiclass' or 'multilabel', got {kind!r}")
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        return _fit(x_train, y_train, x_val, y_val, kind=kind, n_outputs=n_outputs, probe=probe, lrs=lrs,
                    max_epochs=max_epochs, patience=patience, batch_size=batch_size, hidden=hidden, dropout=dropout,
                    weight_decay=weight_decay, val_score=val_score, score_every_epoch=score_every_epoch, seed=seed)
    finally:
        torch.set_num_threads(previous)


def _fit(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, *, kind: str,
         n_outputs: int, probe: str, lrs: Sequence[float] | None, max_epochs: int, patience: int, batch_size: int,
         hidden: int, dropout: float, weight_decay: float, val_score: Callable[[np.ndarray], float] | None,
         score_every_epoch: bool, seed: int) -> FittedProbe:
    lrs = tuple(lrs) if lrs else DEFAULT_LRS.get(probe, (1e-3,))
    if max_epochs < 1 or patience < 1 or batch_size < 1:
        raise ConfigError("max_epochs, patience and batch_size must be >= 1")
    x_train = np.asarray(x_train, dtype=np.float32)
    mean, std = standardize_stats(x_train)
    xt = torch.from_numpy(np.ascontiguousarray((x_train - mean) / std))
    xv = np.ascontiguousarray((np.asarray(x_val, dtype=np.float32) - mean) / std)
    xv_t = torch.from_numpy(xv)
    if kind == "multiclass":
        yt = torch.from_numpy(np.asarray(y_train, dtype=np.int64))
        yv = torch.from_numpy(np.asarray(y_val, dtype=np.int64))
        loss_fn: nn.Module = nn.CrossEntropyLoss()
    else:
        yt = torch.from_numpy(np.asarray(y_train, dtype=np.float32))
        yv = torch.from_numpy(np.asarray(y_val, dtype=np.float32))
        loss_fn = nn.BCEWithLogitsLoss()
    n_layers = xt.shape[1] if xt.ndim == 3 else None
    n = xt.shape[0]
    best: FittedProbe | None = None
    grid: list[dict[str, Any]] = []
    for lr in lrs:
        torch.manual_seed(seed)
        model = ProbeNet(xt.shape[-1], n_outputs, n_layers=n_layers, head=probe, hidden=hidden, dropout=dropout)
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        gen = torch.Generator().manual_seed(seed)
        best_state, best_sel, best_epoch, since, epoch = None, -np.inf, 0, 0, 0
        best_key: tuple[float, float] = (-np.inf, -np.inf)
        diverged = False
        for epoch in range(1, max_epochs + 1):
            model.train()
            perm = torch.randperm(n, generator=gen)
            for lo in range(0, n, batch_size):
                idx = perm[lo:lo + batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                logits = torch.cat([model(xv_t[lo:lo + 8192]) for lo in range(0, len(xv_t), 8192)])
                vloss = float(loss_fn(logits, yv))
            if not np.isfinite(vloss):
                diverged = True
                break
            if score_every_epoch and val_score is not None:
                probs = (torch.softmax(logits, 1) if kind == "multiclass" else torch.sigmoid(logits)).numpy()
                sel = float(val_score(probs.astype(np.float64)))
                sel = -np.inf if not np.isfinite(sel) else sel
            else:
                sel = -vloss
            # ties on the (often coarse) validation score are broken by the validation loss
            key = (round(sel, 12), -vloss)
            if best_state is None or key > best_key:
                best_key, best_sel = key, sel
                best_state, best_epoch, since = copy.deepcopy(model.state_dict()), epoch, 0
            else:
                since += 1
                if since >= patience:
                    break
        if best_state is None:
            grid.append({"lr": lr, "val_score": float("nan"), "best_epoch": 0, "epochs": epoch, "diverged": True})
            continue
        model.load_state_dict(best_state)
        model.eval()
        fitted = FittedProbe(model, mean, std, kind, float(lr), int(best_epoch), float(best_sel))
        if val_score is not None and not score_every_epoch:
            fitted.val_score = float(val_score(_predict(model, xv, kind, 8192)))
        grid.append({"lr": float(lr), "val_score": fitted.val_score, "best_epoch": int(best_epoch),
                     "epochs": int(epoch), "diverged": diverged})
        logger.debug("probe lr=%g: best epoch %d, validation score %.4f", lr, best_epoch, fitted.val_score)
        if best is None or (np.isfinite(fitted.val_score) and fitted.val_score > best.val_score + 1e-12) \
                or not np.isfinite(best.val_score):
            best = fitted
    if best is None:
        raise TrainingError(
            f"the probe's loss became non-finite for every learning rate {list(lrs)}; check the features for "
            "huge values or use smaller learning rates"
        )
    best.grid = grid
    return best
