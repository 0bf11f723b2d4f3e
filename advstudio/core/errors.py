"""User-facing error types.

Every problem a user can cause (a bad file, a bad model, a bad parameter) is raised as an
`AdvStudioError` whose message is one line naming the problem. Front ends print or show that
line instead of a traceback; anything else that escapes is a bug.
"""


class AdvStudioError(Exception):
    """A problem with the user's input, explained in one line."""


class AudioError(AdvStudioError):
    """An audio file could not be read or written."""


class AudioFileNotFoundError(AudioError):
    pass


class AudioIsDirectoryError(AudioError):
    pass


class EmptyAudioFileError(AudioError):
    pass


class CorruptAudioError(AudioError):
    """Truncated or damaged data in a file of a known audio format."""


class NotAudioError(AudioError):
    """The file is not audio at all (text, image, ...)."""


class UnsupportedFormatError(AudioError):
    pass


class NoSamplesError(AudioError):
    pass


class NonFiniteAudioError(AudioError):
    """NaN or infinite samples."""


class ExportExistsError(AudioError):
    """An export would overwrite an existing file."""


class ModelError(AdvStudioError):
    """A model could not be loaded or does not fit the AudioClassifier contract."""


class DatasetError(AdvStudioError):
    """A dataset layout could not be read."""


class ParameterError(AdvStudioError):
    """A bad parameter value or an unknown name (class, attack, preset, ...)."""


class RendererUnavailableError(AdvStudioError):
    """FluidSynth or the SoundFonts needed to render the demo set are missing."""


class OutputError(AdvStudioError):
    """An output cannot be written where asked (missing or read-only folder, bad name)."""


class ResultsFileError(AdvStudioError):
    """A saved results file cannot be read (missing, not JSON, or not the kind expected)."""
