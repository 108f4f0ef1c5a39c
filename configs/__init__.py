"""Hydra configs of the ``worldsim`` CLI (a package so that they install with the library)."""
