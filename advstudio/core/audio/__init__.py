"""Audio in and out: loading any readable file as mono float32 at the model's rate, saving
exports without silent overwrites."""

from advstudio.core.audio.io import (
    AUDIO_EXTENSIONS,
    EXPORT_SUBTYPES,
    Audio,
    load_audio,
    resample,
    save_audio,
)

__all__ = ["AUDIO_EXTENSIONS", "EXPORT_SUBTYPES", "Audio", "load_audio", "resample", "save_audio"]
