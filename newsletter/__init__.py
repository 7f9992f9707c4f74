"""newsletter: one short, personal digest of new papers per reader.

The library API is :func:`make_app`; the command line (:mod:`newsletter.cli`)
is a thin layer over it.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "make_app"]


def __getattr__(name: str) -> object:
    if name == "make_app":  # imported lazily so `newsletter --version` stays fast
        from .pipeline import make_app

        return make_app
    raise AttributeError(name)
