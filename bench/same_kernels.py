"""The OpenBLAS kernels attnlab's programs run, for torch and numpy in the bench scripts: import
this module before numpy or torch."""
import ctypes
import ctypes.util
import os
import sys


def same_kernels_as_attnlab():
    """attnlab's programs replace OpenBLAS's SSE-only fallback core (Debian 12's OpenBLAS on a CPU
    newer than it: Prescott on a Sapphire Rapids) by the AVX-512 or AVX2 kernels the CPU has
    (engine/core/gemm.cpp); torch runs on the same library, so it gets the same choice: this
    script runs itself again with OPENBLAS_CORETYPE set, before numpy or torch load it."""
    if "OPENBLAS_CORETYPE" in os.environ:
        return
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("openblas") or "libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        core = lib.openblas_get_corename().decode()
        flags = set(open("/proc/cpuinfo").read().split("flags", 2)[1].split("\n")[0].split())
    except (OSError, AttributeError, IndexError):
        return
    old = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai", "Coppermine",
           "Northwood", "Banias", "Sandybridge", "Unknown"}
    if core not in old:
        return
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    elif {"avx2", "fma"} <= flags:
        os.environ["OPENBLAS_CORETYPE"] = "Haswell"
    else:
        return
    os.execv(sys.executable, [sys.executable] + sys.argv)



same_kernels_as_attnlab()
