"""vjepa-exp: V-JEPA pretraining, frozen evaluation and reproducible ablations.

Importing the package is cheap: heavy libraries (torch, PyAV, DVC, Optuna, polars) are imported
by the submodules that need them, so the CLI can answer ``--help`` instantly.
"""

__version__ = "0.1.0"
