"""Shared test settings: small thread counts so the suite runs well on 2 cores."""

from __future__ import annotations

import os

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
