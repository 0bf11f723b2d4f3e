"""A detector subnetwork (Metzen et al.): a small classifier trained to tell clean clips from
adversarial examples by the model's activations. Metzen et al. attach it to an intermediate
layer; every shipped architecture exposes its last hidden layer (`embed`), so it reads that:
one hidden layer of `HIDDEN_UNITS` ReLU units on the standardised embedding, trained by Adam
on the balanced cross-entropy. The score is its logit."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from advstudio.core.detectors.base import Detector
from advstudio.core.detectors.features import embed_clips, hidden, standardise

HIDDEN_UNITS = 32
STEPS = 300
LEARNING_RATE = 1e-2
WEIGHT_DECAY = 1e-3
SEED = 0


class DetectorSubnetwork(Detector):
    name = "subnetwork"
    title = "Detector subnetwork on the last hidden layer"
    arrays = ("embed_mean", "embed_std", "w1", "b1", "w2", "b2")

    def __init__(self) -> None:
        super().__init__()
        self.embed_mean = torch.zeros(0)
        self.embed_std = torch.zeros(0)
        self.w1, self.b1 = torch.zeros(0, 0), torch.zeros(0)
        self.w2, self.b2 = torch.zeros(0, 0), torch.zeros(0)

    def _fit(self, model, clean, adversarial) -> None:
        clean_embeddings = embed_clips(model, clean)
        self.embed_mean = clean_embeddings.mean(0)
        self.embed_std = clean_embeddings.std(0).clamp_min(1e-6)
        inputs = standardise(
            torch.cat([clean_embeddings, embed_clips(model, adversarial)]),
            self.embed_mean,
            self.embed_std,
        )
        targets = torch.cat([torch.zeros(len(clean)), torch.ones(len(adversarial))])
        weight = torch.where(targets > 0, len(clean) / len(adversarial), 1.0)
        generator = torch.Generator().manual_seed(SEED)
        first = torch.nn.Linear(inputs.shape[1], HIDDEN_UNITS)
        second = torch.nn.Linear(HIDDEN_UNITS, 1)
        for layer in (first, second):
            torch.nn.init.normal_(layer.weight, std=layer.in_features**-0.5, generator=generator)
            torch.nn.init.zeros_(layer.bias)
        parameters = [*first.parameters(), *second.parameters()]
        optimiser = torch.optim.Adam(parameters, LEARNING_RATE, weight_decay=WEIGHT_DECAY)
        with torch.enable_grad():
            for _ in range(STEPS):
                optimiser.zero_grad()
                logits = second(F.relu(first(inputs)))[:, 0]
                F.binary_cross_entropy_with_logits(logits, targets, weight).backward()
                optimiser.step()
        self.w1, self.b1 = first.weight.detach(), first.bias.detach()
        self.w2, self.b2 = second.weight.detach(), second.bias.detach()

    def torch_score(self, model, wave, lengths):
        z = standardise(hidden(model, wave, lengths), self.embed_mean, self.embed_std)
        inner = F.relu(z @ self.w1.to(z).T + self.b1.to(z))
        return (inner @ self.w2.to(z).T + self.b2.to(z))[:, 0]
