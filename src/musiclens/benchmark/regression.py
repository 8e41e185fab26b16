"""A regression probe (Emomusic arousal/valence): the MARBLE head trained with a mean-squared error.

:func:`musiclens.probe.models.fit_probe` trains classifiers only; this is its regression
counterpart with the same choices: the same :class:`~musiclens.probe.models.ProbeNet` head (and
softmax-weighted layer sum), features standardised on the training split, targets standardised on
the training split (MARBLE normalises Emomusic's targets the same way; R² is unchanged by it),
Adam, seeded minibatch order, early stopping on the validation score (``val_score`` of the
de-standardised predictions, higher is better; ties broken by the validation loss).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from musiclens.errors import ConfigError, TrainingError
from musiclens.probe.models import ProbeNet, standardize_stats

__all__ = ["FittedRegression", "fit_regression"]


@dataclass
class FittedRegression:
    """A trained regression probe (best checkpoint) with its standardisation."""

    model: ProbeNet
    mean: np.ndarray
    std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray
    lr: float
    best_epoch: int
    val_score: float
    epochs: int

    def predict(self, x: np.ndarray, *, batch_size: int = 8192) -> np.ndarray:
        """``[shape=(n, n_outputs)]`` predictions in the targets' units."""
        self.model.eval()
        xs = (np.asarray(x, dtype=np.float32) - self.mean) / self.std
        out = []
        with torch.no_grad():
            for lo in range(0, len(xs), batch_size):
                out.append(self.model(torch.from_numpy(np.ascontiguousarray(xs[lo:lo + batch_size]))).numpy())
        z = np.concatenate(out).astype(np.float64) if out else np.zeros((0, len(self.y_mean)))
        return z * self.y_std + self.y_mean

    def layer_weights(self) -> np.ndarray | None:
        w = self.model.layer_weights()
        return None if w is None else w.detach().cpu().numpy().astype(np.float64)


def fit_regression(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, *, lr: float,
                   val_score: Callable[[np.ndarray], float], probe: str = "mlp", max_epochs: int = 100,
                   patience: int = 10, batch_size: int = 64, hidden: int = 512, dropout: float = 0.2,
                   seed: int = 0, num_threads: int | None = 1) -> FittedRegression:
    """Train one regression probe at one learning rate with early stopping.

    Parameters
    ----------
    x_train, x_val
        ``[shape=(n, dim)]`` or ``[shape=(n, n_layers, dim)]`` (weighted layer sum).
    y_train, y_val
        ``[shape=(n, n_outputs)]`` float targets.
    val_score
        ``f(predictions [n_val, n_outputs]) -> float`` (e.g. mean R²), higher is better.
    """
    if max_epochs < 1 or patience < 1 or batch_size < 1:
        raise ConfigError("max_epochs, patience and batch_size must be >= 1")
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        x_train = np.asarray(x_train, dtype=np.float32)
        mean, std = standardize_stats(x_train)
        yt_np = np.asarray(y_train, dtype=np.float64).reshape(len(x_train), -1)
        y_mean, y_std = yt_np.mean(0), yt_np.std(0)
        y_std = np.where(y_std > 1e-12, y_std, 1.0)
        xt = torch.from_numpy(np.ascontiguousarray((x_train - mean) / std))
        xv = torch.from_numpy(np.ascontiguousarray((np.asarray(x_val, dtype=np.float32) - mean) / std))
        yt = torch.from_numpy(((yt_np - y_mean) / y_std).astype(np.float32))
        yv = torch.from_numpy(((np.asarray(y_val, dtype=np.float64).reshape(len(xv), -1) - y_mean) / y_std)
                              .astype(np.float32))
        torch.manual_seed(seed)
        model = ProbeNet(xt.shape[-1], yt.shape[1], n_layers=xt.shape[1] if xt.ndim == 3 else None, head=probe,
                         hidden=hidden, dropout=dropout)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(seed)
        loss_fn = nn.MSELoss()
        best_state, best_key, best_epoch, best_sel, since, epoch = None, (-np.inf, -np.inf), 0, -np.inf, 0, 0
        for epoch in range(1, max_epochs + 1):
            model.train()
            perm = torch.randperm(len(xt), generator=gen)
            for lo in range(0, len(xt), batch_size):
                idx = perm[lo:lo + batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                pv = model(xv)
                vloss = float(loss_fn(pv, yv))
            if not np.isfinite(vloss):
                break
            sel = float(val_score(pv.numpy().astype(np.float64) * y_std + y_mean))
            sel = sel if np.isfinite(sel) else -np.inf
            key = (round(sel, 12), -vloss)
            if best_state is None or key > best_key:
                best_key, best_sel, best_epoch, since = key, sel, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                since += 1
                if since >= patience:
                    break
        if best_state is None:
            raise TrainingError(f"the regression probe diverged at lr={lr}; use a smaller learning rate")
        model.load_state_dict(best_state)
        model.eval()
        return FittedRegression(model, mean, std, y_mean, y_std, float(lr), int(best_epoch), float(best_sel),
                                int(epoch))
    finally:
        torch.set_num_threads(previous)
