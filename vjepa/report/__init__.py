"""Probe metrics -> tidy table -> pivot, its text tables and its pictures.

Shared by the report stage and the platform (``vjepa-exp results``), so it imports neither: its
callers hand it the probe list and a reader of metrics. Modules: ``results`` (tidy table, pivot),
``tables`` (rich, Markdown, CSV, JSON), ``plots`` (PNG figures and the DVC plot data).
"""
