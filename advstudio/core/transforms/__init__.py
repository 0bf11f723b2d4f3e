"""Transformations between an adversarial waveform and the model: codecs, resampling, filters,
quantisation, noise, gain, shifts and rooms. See base.py for the contract and spec.py for the
text form (`mp3@64k,room:small+noise@30dB`)."""
