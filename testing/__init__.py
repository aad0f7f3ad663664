"""Test support for connector authors: the contract suite every connector runs.

Needs pytest (install `pmsync[testing]`); nothing pmsync runs in production imports it.
"""
