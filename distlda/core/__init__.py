"""The algorithm without a model object or a network.

Batch statistics, the E-step backends (the protocol and the local one), the M-step
plan and its application, the priors, the training loop, and the validation of
user input.
"""
