"""Set checks: faults a file shows only beside the others in its set.

A sample rate, channel layout or bit depth unlike the majority's; an EBU R128 loudness far out
of line with the set's; the same recording twice (bit for bit, or at another gain or offset,
by fingerprint). `set_findings` judges a set by itself; `findings_against` judges new files by
an audited set, as files arrive (the audit's --watch).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence

import numpy as np

from advstudio.core.audit.facts import FileFacts
from advstudio.core.audit.findings import Finding
from advstudio.core.audit.fingerprint import match

SET_CHECKS = ("format", "loudness", "duplicates")

_FORMAT_FIELDS = (("sample_rate", "sample rate"), ("channels", "channels"), ("subtype", "format"))
_MIN_SET = 3  # a majority needs a few files to be one
_LOUDNESS_MIN_FILES = 5
_LOUDNESS_SIGMAS = 4.0  # robust standard deviations (from the median absolute deviation)
_LOUDNESS_MIN_LU = 10.0  # and at least this far from the median, whatever the spread
_MATCH_AT_ZERO, _MATCH_FLAG = 0.35, 0.7  # fingerprint correlation: other notes stay under 0.65


def _ramp(value: float, at_zero: float, at_half: float) -> float:
    return float(np.clip(0.5 * (value - at_zero) / (at_half - at_zero), 0.0, 1.0))


def _format_findings(judged: Sequence[FileFacts], basis: Sequence[FileFacts]) -> list[Finding]:
    """A file whose rate, channel count or sample format differs from a clear majority."""
    majorities = {}
    for field, _ in _FORMAT_FIELDS:
        counts = Counter(getattr(f, field) for f in basis)
        value, count = counts.most_common(1)[0]
        if len(basis) >= _MIN_SET and count / len(basis) > 0.5:
            majorities[field] = (value, count / len(basis))
    findings = []
    for facts in judged:
        odd = [
            (f"{label} {getattr(facts, field)} (the set's: {value})", share)
            for field, label in _FORMAT_FIELDS
            if field in majorities
            for value, share in [majorities[field]]
            if getattr(facts, field) != value
        ]
        if odd:
            reason = "unlike the set: " + ", ".join(text for text, _ in odd)
            score = max(share for _, share in odd)
            detail = {"differs": [text for text, _ in odd]}
            findings.append(Finding(facts.path, "format", round(score, 4), True, reason, detail))
        else:
            findings.append(Finding(facts.path, "format", 0.0, False, "format as the set's"))
    return findings


def _loudness_findings(judged: Sequence[FileFacts], basis: Sequence[FileFacts]) -> list[Finding]:
    """Integrated loudness far from the set's median, in robust standard deviations and LU."""
    levels = np.array([f.loudness_lufs for f in basis if f.loudness_lufs is not None])
    if len(levels) < _LOUDNESS_MIN_FILES:
        return []
    median = float(np.median(levels))
    spread = max(1.4826 * float(np.median(np.abs(levels - median))), 0.5)
    findings = []
    for facts in judged:
        if facts.loudness_lufs is None:
            continue
        offset = facts.loudness_lufs - median
        sigmas = abs(offset) / spread
        score = min(_ramp(sigmas, 0.0, _LOUDNESS_SIGMAS), _ramp(abs(offset), 0.0, _LOUDNESS_MIN_LU))
        detail = {"lufs": facts.loudness_lufs, "set_median_lufs": round(median, 2)}
        detail["sigmas"] = round(sigmas, 2)
        flagged = score >= 0.5
        word = "louder" if offset > 0 else "quieter"
        reason = (
            f"{facts.loudness_lufs:.1f} LUFS, {abs(offset):.0f} LU {word} than the set's median"
        )
        if flagged:
            reason = "extreme loudness: " + reason
        findings.append(Finding(facts.path, "loudness", round(score, 4), flagged, reason, detail))
    return findings


def _duplicate_findings(
    judged: Sequence[FileFacts], candidates: Sequence[FileFacts]
) -> list[Finding]:
    """Each judged file's copies among the candidates: bit-identical audio, or the same
    recording by fingerprint (at another gain or time offset)."""
    scores: dict[frozenset[str], tuple[float, float]] = {}  # each pair is matched once
    findings = []
    for facts in judged:
        best, related, offset = 0.0, [], 0.0
        exact = False
        for other in candidates:
            if other.path == facts.path:
                continue
            if facts.content_hash is not None and facts.content_hash == other.content_hash:
                score, is_exact, shift = 1.0, True, 0.0
            elif facts.fingerprint is not None and other.fingerprint is not None:
                pair = frozenset((facts.path, other.path))
                if pair not in scores:
                    found = match(facts.fingerprint, other.fingerprint)
                    scores[pair] = (_ramp(found.score, _MATCH_AT_ZERO, _MATCH_FLAG), found.offset_s)
                (score, shift), is_exact = scores[pair], False
            else:
                continue
            if score >= 0.5:
                related.append(other.path)
            if score > best:
                best, exact, offset = score, is_exact, shift
        if not related:
            findings.append(
                Finding(facts.path, "duplicates", round(best, 4), False, "no copy found")
            )
            continue
        kind = "exact duplicate" if exact else "near duplicate (same recording by fingerprint)"
        reason = f"{kind} of {related[0]}" + (
            f" and {len(related) - 1} more" if len(related) > 1 else ""
        )
        detail = {"copies": len(related), "offset_s": round(abs(offset), 3), "exact": exact}
        findings.append(
            Finding(facts.path, "duplicates", round(best, 4), True, reason, detail, tuple(related))
        )
    return findings


def _findings(
    judged: Sequence[FileFacts],
    basis: Sequence[FileFacts],
    candidates: Sequence[FileFacts],
    checks: Collection[str],
) -> list[Finding]:
    judged = [f for f in judged if f.readable]
    basis = [f for f in basis if f.readable]
    candidates = [f for f in candidates if f.readable]
    findings = []
    if "format" in checks and basis:
        findings += _format_findings(judged, basis)
    if "loudness" in checks:
        findings += _loudness_findings(judged, basis)
    if "duplicates" in checks:
        findings += _duplicate_findings(judged, candidates)
    return findings


def set_findings(facts: Sequence[FileFacts], checks: Collection[str] = SET_CHECKS) -> list[Finding]:
    """Every readable file judged against the rest of its set (unreadable files are skipped:
    they already carry an UNREADABLE finding)."""
    return _findings(facts, facts, facts, checks)


def findings_against(
    reference: Sequence[FileFacts], new: Sequence[FileFacts], checks: Collection[str] = SET_CHECKS
) -> list[Finding]:
    """New files judged against an audited set: its majority format and loudness, and copies
    of its files (or of each other)."""
    return _findings(new, reference, list(reference) + list(new), checks)
