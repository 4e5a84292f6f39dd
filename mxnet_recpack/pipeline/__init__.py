"""The pipeline: workers read, transform, encode and frame items (``encoder``, ``executors``,
``workers``); one writer appends their records in dataset order (``writer``) inside a
transaction that commits only on success (``commit``); the job runner writes whole files or
parts, here or on Dask (``jobs``), and every run reports a ``WriteSummary`` (``summary``).

May import ``errors``, ``options``, ``format``, ``storage`` and ``images``. It never imports a
framework: a framework layer registers an adapter (``adapters``) instead.
"""
