"""The ``vjepa-exp`` command line. Modules here parse and render; the work lives in ``vjepa``."""
