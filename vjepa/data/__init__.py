"""Data: the synthetic benchmark, the data index, clip reading and transforms (PyAV + PyTorch).

Submodules are imported on demand, so ``import vjepa.data`` stays cheap.
"""
