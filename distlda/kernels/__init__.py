"""numba kernels, arrays in and out: special functions, random numbers, E-step, M-step, bound, threads.

Nothing here knows a model object, a corpus class or the network. The code in this
folder decides distlda's numbers, so the cluster's fingerprint
(:mod:`distlda.core.fingerprint`) hashes all of it.
"""
