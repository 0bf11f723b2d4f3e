"""What the command line shows of the detectors before any is loaded: their names and the
defaults of their settings. Free of torch and scikit-learn, so that building the parser
(`advstudio --help`, every subcommand) does not import them; a test checks the names against
the registry in detectors/__init__.py (a module outside that package: importing anything in
it runs its __init__, which loads every detector)."""

DETECTOR_NAMES = ("pca-input", "pca-hidden", "kde-bu", "mmd", "subnetwork", "transform")
DEFAULT_TRANSFORM = "mp3@64k"  # the transform detector's
DEFAULT_WEIGHT = 1.0  # the adaptive attack's weight on the detectors' scores
