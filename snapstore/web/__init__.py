"""A read-only web interface to a store (``snapstore serve``; the ``[web]`` extra):
runs to browse and filter, each run's provenance, diagnostics, plots and downloads,
snapshots, ensembles compared, and a JSON mirror of the listings."""

from snapstore.web.server import check_binding, serve

__all__ = ["check_binding", "serve"]
