"""What an attack is after, and what counts as reaching it.

- Success, targeted: the prediction is the target. Untargeted: the prediction differs from the
  clean clip's prediction and, when the clip's true label is known, from that label too, so
  that moving a clip the model gets wrong onto its correct label is not counted as found.
  With `success=truth`, clips the model already gets wrong are not attacked (see next).
- Already met: a clip whose clean prediction already is the target (or, with
  `success=truth`, is already wrong) is not attacked. Its result says `already=True`,
  `success=False`, 0 iterations, and the adversarial waveform is the original.
- Directives (paper 004): `wrong` drives every clip away from its ground truth (untargeted,
  success against the truth: clips already misclassified are done at 0 iterations);
  `right` drives every clip to its ground truth (the "perfect system": clips already right
  are done). Both need every clip's class. `every-label` attacks each clip towards every
  class in turn, through explicit per-clip targets (every_label.py).
- `random` draws a target among the classes other than the clean prediction; `random-any`
  draws it among every class, the clean prediction included (paper 004's "random": right one
  time in C; a clip whose draw is its own prediction is already met).
- Random targets and random starts are drawn from the seed and the clip's own samples, so a
  clip gets the same target and start whatever batch or position it has, and different
  clips attacked one at a time get different targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from advstudio.core.attacks.every_label import EVERY_LABEL
from advstudio.core.errors import ParameterError
from advstudio.core.labels import match_label

RANDOM_ANY = "random-any"  # a target uniform over every class (paper 004's "random")

TARGET_MODES = (
    "untargeted",
    "random",
    RANDOM_ANY,
    "least-likely",
    "wrong",
    "right",
    EVERY_LABEL,
)
DIRECTIVES = ("wrong", "right")  # target modes judged against each clip's ground truth
SUCCESS_AGAINST = ("prediction", "truth")
UNKNOWN_LABEL = -1  # the ground truth of a clip whose class is not known


@dataclass(frozen=True)
class Goal:
    """What counts as success: a target mode or class name, the reference for untargeted
    success (the original prediction, or the ground truth), and an optional confidence."""

    target: str = "untargeted"
    success_against: str = "prediction"
    confidence: float = 0.0

    @property
    def targeted(self) -> bool:
        return self.target not in ("untargeted", "wrong")

    @property
    def against_truth(self) -> bool:
        """Untargeted success judged against the ground truth (`success=truth`, or the
        `wrong` directive)."""
        return self.success_against == "truth" or self.target == "wrong"


def is_success(
    prediction: int,
    orig_pred: int,
    target: int | None,
    true_label: int | None,
    against_truth: bool = False,
) -> bool:
    """The success test: the target, or (untargeted) a prediction other than the original
    one and, when the true label is known, other than that too. Judged against the truth
    (and the truth known), only the true label counts: a clip the model got wrong with too
    little confidence succeeds by staying wrong with enough."""
    if target is not None:
        return prediction == target
    if against_truth and true_label is not None:
        return prediction != true_label
    return prediction != orig_pred and prediction != true_label


def goal_already_met(
    orig_pred: int, target: int | None, true_label: int | None, against_truth: bool
) -> bool:
    """Whether the clean clip already meets the goal, leaving nothing to attack: its prediction
    is the target, or (untargeted, success against the truth) its prediction is wrong."""
    if target is not None:
        return orig_pred == target
    return against_truth and true_label is not None and orig_pred != true_label


def resolve_target(goal: Goal, labels: Sequence[str]) -> int | None:
    """The class index of a named target, written as people write it; None for the modes."""
    if goal.target in TARGET_MODES:
        return None
    try:
        return match_label(goal.target, labels, "target class")
    except ParameterError as exc:
        raise ParameterError(f"{exc} (or use {', '.join(TARGET_MODES)})") from None


def validate_goal(goal: Goal, labels: Sequence[int | None] | None) -> None:
    """Refuse, in one line, a goal the clips' labels cannot support. `labels` None means no
    clip's class is known; a list may hold None for a clip of unknown class, which success
    against the truth judges against its prediction instead (a study's batch may hold only
    such clips, so whether any class at all is known is for the caller to check over the
    whole set: `validate_labelled_set`)."""
    if goal.success_against not in SUCCESS_AGAINST:
        raise ParameterError(f"success must be judged against {' or '.join(SUCCESS_AGAINST)}")
    if goal.target in DIRECTIVES and (labels is None or any(t is None for t in labels)):
        raise ParameterError(
            f"--target {goal.target} needs every file's class (a file in a folder named "
            "after its class, or a labelled data set)"
        )
    if goal.against_truth and not goal.targeted and labels is None:
        raise ParameterError("success against the ground truth needs the files' labels")


def validate_labelled_set(goal: Goal, labels: Sequence[int | None]) -> None:
    """`validate_goal` over a whole set of clips (a study), of which some classes must be
    known for success against the truth."""
    validate_goal(goal, None if all(t is None for t in labels) else labels)
