"""The CUDA path: the same model, attacks and CLI on a GPU as on the CPU. Skipped where no GPU
is present (CI has none); run on a machine with one to check the device-agnostic code."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from advstudio.cli import main
from advstudio.core.attacks import ATTACKS, make_attack
from advstudio.core.attacks.memory import available_bytes
from advstudio.core.inference import load_for_model
from advstudio.core.models import load_model
from advstudio.core.models.base import predict_proba
from advstudio.core.resources import demo_clips

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

FAST = {"max_iter": "300"}  # C&W's paper preset needs about 80 iterations (median)


@pytest.fixture(scope="module")
def models():
    return load_model(device="cpu"), load_model(device="cuda")


@pytest.fixture(scope="module")
def clips(models):
    cpu, _ = models
    return [load_for_model(path, cpu).samples for path in demo_clips()[::4]]


def test_the_shipped_model_gives_the_same_probabilities_on_cuda(models, clips):
    cpu, cuda = models
    assert cuda.device.type == "cuda"
    on_cpu, on_cuda = predict_proba(cpu, clips), predict_proba(cuda, clips)
    np.testing.assert_allclose(on_cuda, on_cpu, atol=2e-3)
    assert (on_cuda.argmax(1) == on_cpu.argmax(1)).all()


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_runs_batched_on_cuda_and_its_results_hold(models, clips, name):
    """A batch of clips of different lengths on the GPU: results come back as float32 numpy
    waveforms of each clip's length, and every claimed success holds when the waveform is
    classified again (on the CPU)."""
    cpu, cuda = models
    params = {} if name == "fgsm" else FAST
    results = make_attack(name, "paper", **params).run(cuda, clips, batch_size=4)
    assert [len(r.adversarial) for r in results] == [len(c) for c in clips]
    assert all(r.adversarial.dtype == np.float32 for r in results)
    assert any(r.success for r in results)
    again = predict_proba(cpu, [r.adversarial for r in results])
    for result, p in zip(results, again, strict=True):
        if result.success:  # CPU and CUDA probabilities agree within 2e-3 (test above)
            assert result.holds_for(int(p.argmax()), float(p.max()) + 2e-3), (name, result.item)


def test_the_memory_check_reads_the_gpu(models):
    free = available_bytes(torch.device("cuda"))
    assert free is not None and 0 < free <= torch.cuda.get_device_properties(0).total_memory


def test_the_attack_command_on_cuda_writes_a_verified_file(tmp_path, capsys):
    clip = demo_clips()[0]
    out = tmp_path / "adv.wav"
    status = main(
        ["attack", str(clip), "--attack", "mscw", "--preset", "paper", "--device", "cuda"]
        + ["-o", str(out), "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert status == (0 if report["survived_quantisation"] else 3)
    assert out.is_file() and report["success"]
