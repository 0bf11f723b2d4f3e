"""Everything that computes. Never imports Qt: the GUI is a thin layer over this package."""
