"""Settings for the whole test session.

BLAS on one thread, for this process and the ones the tests start: the fits make many tiny vector operations
(scipy's L-BFGS-B), which OpenBLAS's thread pool makes many times dearer in CPU time (one MoE law fit: 12.4 CPU s
with the default threads, 0.4 with one, the same parameters; bench/README.md, "Test suite"). Set here, before
numpy or scipy load BLAS; a value already in the environment is kept.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
