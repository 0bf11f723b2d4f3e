"""Auditing audio data sets: faulty recordings, likely mislabels and outliers (issue 16)."""
