"""Exports and reports: adversarial audio with a survival check, JSON, CSV (HTML to come)."""
