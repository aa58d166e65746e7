"""labkit's version (one place: the package, setup.cfg and every run's config.json read it)."""

__version__ = "0.1.0"
