"""The engine's queue and per-row state: rows leave a batch when they finish and the next
clips of the queue join, each row counting its own iterations; and the per-row fields of the
parts follow rows through leaving and joining."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from advstudio.core.attacks import make_attack
from advstudio.core.attacks.engine import run_engine
from advstudio.core.attacks.eot import ExpectationOverTransformation
from advstudio.core.attacks.goals import Goal
from advstudio.core.attacks.rows import ROW, SAMPLES, Frames, Rows
from advstudio.core.audio import load_audio
from advstudio.core.models import load_model
from advstudio.core.progress import AttackStep, ItemFinished, NullReporter, RecordingReporter
from advstudio.core.resources import demo_clips
from advstudio.core.transforms.base import Mixture, Transform

# Small steps in a small ball: on the shipped model four of the six cut clips are fooled
# within 25 steps (after 4 to 22) and two run to the cap, so both kinds of row occur.
PGDN = {"eps": 0.0005, "eta": 2e-5, "max_iter": 25}


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def clips(model):
    """Six demo clips of different classes, cut to lengths from 0.3 s to 1.2 s so that the
    queue's longest-first order and the padding both matter."""
    paths = demo_clips()[::4]
    lengths = [4800, 19200, 8000, 16000, 6400, 12000]
    return [
        load_audio(p, model.sample_rate).samples[:n] for p, n in zip(paths, lengths, strict=True)
    ]


def steps_of(reporter):
    return [e for e in reporter.events if isinstance(e, AttackStep)]


def test_finished_rows_make_room_for_the_next_clips(model, clips):
    """With room for two rows, the batch stays full while clips wait, and every clip gets
    the result it gets in one batch of all clips."""
    attack = make_attack("pgdn", **PGDN)
    together = attack.run(model, clips, seed=3, batch_size=16)
    reporter = RecordingReporter()
    queued = attack.run(model, clips, seed=3, batch_size=2, reporter=reporter)
    assert sum(r.success for r in together) >= 3  # rows leave early, so the queue is used
    assert any(not r.success for r in together)  # and some run to the cap
    steps = steps_of(reporter)
    finished_before = 0
    for event in reporter.events:
        if isinstance(event, ItemFinished):
            finished_before = event.done
        elif isinstance(event, AttackStep):
            waiting = len(clips) - finished_before - len(event.items)
            assert len(event.items) <= 2
            if waiting > 0:
                assert len(event.items) == 2, "a row was free while clips waited"
    # Clips joined a running batch: some step holds items at different iterations.
    assert any(len(set(s.iterations)) > 1 for s in steps)
    for a, b in zip(together, queued, strict=True):
        assert (a.success, a.iterations, a.target, a.new_pred, a.steps) == (
            b.success,
            b.iterations,
            b.target,
            b.new_pred,
            b.steps,
        )
        assert abs(a.snr_db - b.snr_db) < 0.1


def test_each_row_counts_its_own_iterations(model, clips):
    reporter = RecordingReporter()
    results = make_attack("pgdn", **PGDN).run(model, clips, seed=3, batch_size=3, reporter=reporter)
    steps = steps_of(reporter)
    for item, result in enumerate(results):
        seen = [s.iterations[s.items.index(item)] for s in steps if item in s.items]
        assert seen == list(range(result.iterations + 1))
    for s in steps:
        assert s.iteration == max(s.iterations)


def test_the_longest_clips_start_first(model, clips):
    reporter = RecordingReporter()
    make_attack("fgsm", eps=0.01).run(model, clips, batch_size=2, reporter=reporter)
    first = steps_of(reporter)[0]
    longest = sorted(range(len(clips)), key=lambda i: -len(clips[i]))[:2]
    assert sorted(first.items) == sorted(longest)


def test_a_transform_stands_between_the_stored_waveform_and_the_model(model, clips):
    """What the model hears passes through expectation over transformation: a transform that
    mutes whatever it gets leaves the model nothing but silence to hear, so a target other
    than silence's class is never reached (the same attack without it reaches it). A clip
    already of the target class is not attacked at all."""
    attack = make_attack("pgdn", **PGDN)
    plain = attack.composition()
    with torch.no_grad():
        silent = int(model(torch.zeros(1, 16000), torch.tensor([16000])).argmax())
    goal = Goal(model.labels[(silent + 1) % len(model.labels)])

    class Mute(Transform):
        def apply(self, wave, lengths, rate, generators):
            return wave * 0

    mute = Mixture([Mute("mute")])
    deaf = dataclasses.replace(plain, eot=ExpectationOverTransformation(mute, mute, 2, 3, 0.5))

    def run(composition):
        return run_engine(
            model, clips, composition, goal, None, 3, None, 8, NullReporter(), None, "pgdn"
        )

    assert any(r.success for r in run(plain))
    results = run(deaf)
    attacked = [r for r in results if not r.already]
    assert len(attacked) >= 5 and all(r.iterations == 0 for r in results if r.already)
    assert not any(r.success for r in results)
    assert all(r.iterations == PGDN["max_iter"] for r in attacked)


def test_rows_select_and_extend_cut_and_pad_every_kind_of_field():
    rows = Rows(torch.tensor([10, 6]))
    rows.add("wave", torch.ones(2, 10), SAMPLES)
    rows.add("spec", torch.ones(2, 3, Frames(4, 2).count(10)), Frames(4, 2))
    rows.add("t", torch.tensor([1.0, 2.0]), ROW)
    short = rows.select(torch.tensor([False, True]))
    assert short.width == 6
    assert short["wave"].shape == (1, 6)
    assert short["spec"].shape == (1, 3, Frames(4, 2).count(6))
    assert short["t"].tolist() == [2.0]
    joined = short.extend(rows.select(torch.tensor([True, False])))
    assert joined["lengths"].tolist() == [6, 10]
    assert joined["wave"].shape == (2, 10)
    assert joined["wave"][0, 6:].abs().sum() == 0  # padded with zeros
    assert joined["spec"].shape == (2, 3, Frames(4, 2).count(10))
    assert joined["t"].tolist() == [2.0, 1.0]
    with pytest.raises(KeyError):
        joined.add("t", torch.zeros(2), ROW)
    other = Rows(torch.tensor([3]))
    with pytest.raises(KeyError):
        joined.extend(other)


def test_a_clip_of_the_queue_never_widens_the_batch(model, clips):
    """Longest first: whatever joins is no longer than the batch it joins, so padding only
    shrinks over a run."""
    reporter = RecordingReporter()
    make_attack("pgdn", **PGDN).run(model, clips, seed=3, batch_size=2, reporter=reporter)
    widths = []
    for s in steps_of(reporter):
        widths.append(max(len(clips[i]) for i in s.items))
    assert widths == sorted(widths, reverse=True)
