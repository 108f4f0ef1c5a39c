"""Benchmarks that ``worldsim bench`` runs; they ship with the library, so that the command works
from an installed wheel. ``benchmarks/`` in the repository holds thin entry points and the results."""
