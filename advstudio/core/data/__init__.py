"""Datasets: the layouts users bring, and the offline demo set advstudio renders itself."""
