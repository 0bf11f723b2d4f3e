"""Optimisers: one update of the row field `variable` from its gradient, projected.

Adam is written out here rather than taken from torch.optim because its state must follow
the rows of the batch (rows leave when they finish and new clips join), and each row counts
its own steps for the bias correction.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from advstudio.core.attacks.parts import Part
from advstudio.core.attacks.rows import ROW, Rows
from advstudio.core.attacks.stft_magnitude import fista_extrapolate

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8

Projector = Callable[..., torch.Tensor]  # (variable, convex_only=False) -> variable


class SignStep(Part):
    """x <- P(x - lr * sign(g)): FGSM's single step and the textbook PGD."""

    def __init__(self, lr: float) -> None:
        self.lr = lr

    def step(
        self, rows: Rows, variable: torch.Tensor, grad: torch.Tensor, project: Projector
    ) -> torch.Tensor:
        return project(variable - self.lr * grad.sign())


class Adam(Part):
    """Adam on the gradient, or on its sign (`sign=True`, the reference's update for PGDn and
    both C&W attacks)."""

    def __init__(self, lr: float, sign: bool) -> None:
        self.lr, self.sign = lr, sign

    def start(self, rows: Rows, generators: list[torch.Generator]) -> None:
        unit = rows.unit("variable")
        rows.add("exp_avg", torch.zeros_like(rows["variable"]), unit)
        rows.add("exp_avg_sq", torch.zeros_like(rows["variable"]), unit)

    def step(
        self, rows: Rows, variable: torch.Tensor, grad: torch.Tensor, project: Projector
    ) -> torch.Tensor:
        g = grad.sign() if self.sign else grad
        beta1, beta2 = ADAM_BETAS
        exp_avg = rows["exp_avg"].mul(beta1).add_(g, alpha=1 - beta1)
        exp_avg_sq = rows["exp_avg_sq"].mul(beta2).addcmul_(g, g, value=1 - beta2)
        rows["exp_avg"], rows["exp_avg_sq"] = exp_avg, exp_avg_sq
        # Each row's own step count (rows join at different times), in double precision.
        steps = rows["iteration"].double() + 1
        shape = (-1,) + (1,) * (variable.dim() - 1)
        bias1 = (1 - beta1**steps).to(variable.dtype).view(shape)
        bias2 = (1 - beta2**steps).to(variable.dtype).view(shape)
        denom = (exp_avg_sq / bias2).sqrt_().add_(ADAM_EPS)
        return project(variable - self.lr * (exp_avg / bias1) / denom)


class Fista(Part):
    """Paper 004's update: a plain gradient step of size mu, projected, then FISTA momentum
    from the previous projected iterate, projected again onto the convex constraints (the
    reference skipped that second projection)."""

    def __init__(self, mu: float) -> None:
        self.mu = mu

    def start(self, rows: Rows, generators: list[torch.Generator]) -> None:
        variable = rows["variable"]
        rows.add("fista_t", torch.ones(len(rows), device=variable.device), ROW)
        rows.add("previous", variable.clone(), rows.unit("variable"))

    def step(
        self, rows: Rows, variable: torch.Tensor, grad: torch.Tensor, project: Projector
    ) -> torch.Tensor:
        y = project(variable - self.mu * grad)
        z, rows["fista_t"] = fista_extrapolate(y, rows["previous"], rows["fista_t"])
        rows["previous"] = y
        return project(z, convex_only=True)
