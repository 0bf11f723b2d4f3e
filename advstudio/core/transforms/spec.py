"""The text form of transforms, shared by `--eot`, `--survival` and the GUI: conditions
separated by commas, each one transform or a chain joined by "+":

    mp3@64k,vorbis@q2,opus@24k,resample@8k,lowpass@4k,median@5,room:small+noise@30dB

For expectation over transformation the conditions are alternatives (each draw picks one);
for a survival report each condition is one column. Every unknown name or bad argument is
one line naming it (ParameterError).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from advstudio.core.errors import ParameterError
from advstudio.core.transforms.base import ROLES, Chain, Transform
from advstudio.core.transforms.codecs import Mp3, Opus, Vorbis
from advstudio.core.transforms.filters import BandFilter
from advstudio.core.transforms.level import Gain, Shift
from advstudio.core.transforms.median import MedianFilter
from advstudio.core.transforms.noise import Noise
from advstudio.core.transforms.quantisation import Quantise
from advstudio.core.transforms.resampling import Resample
from advstudio.core.transforms.rooms import RecordedRooms, SimulatedRooms

# name -> factory(argument after "@" or ":" or None, role, full text)
_FACTORIES: dict[str, Callable[[str | None, str, str], Transform]] = {
    "mp3": Mp3.from_text,
    "vorbis": Vorbis.from_text,
    "opus": Opus.from_text,
    "resample": Resample.from_text,
    "quantise": Quantise.from_text,
    "lowpass": BandFilter.lowpass,
    "bandpass": BandFilter.bandpass,
    "median": MedianFilter.from_text,
    "noise": Noise.white,
    "pinknoise": Noise.pink,
    "gain": Gain.from_text,
    "shift": Shift.from_text,
    "room": SimulatedRooms.from_text,
    "rir": RecordedRooms.from_text,
}


def parse_conditions(text: str, role: str = "optimise") -> list[Transform]:
    """The conditions of a spec, each a Transform (a Chain where "+" joins several)."""
    if role not in ROLES:
        raise ParameterError(f"unknown transform role {role!r}; choose {', '.join(ROLES)}")
    conditions = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            raise ParameterError(f"empty transform in {text!r}")
        steps = [parse_transform(step.strip(), role) for step in item.split("+")]
        conditions.append(steps[0] if len(steps) == 1 else Chain(steps))
    return conditions


def parse_transform(text: str, role: str = "optimise") -> Transform:
    """One transform from its text ("mp3@64k", "room:hall", "rir:/path/to/folder")."""
    name, separator, argument = re.match(r"([^@:]*)([@:]?)(.*)", text, re.DOTALL).groups()
    factory = _FACTORIES.get(name.strip().lower())
    if factory is None:
        raise ParameterError(f"unknown transform {text!r}; known: {', '.join(_FACTORIES)}")
    return factory(argument.strip() if separator else None, role, text)
