"""The app layer of featurestore: the only code that imports both the data layer (``featurestore``)
and the learning layer (``probes``).

- :mod:`featurestore_app.cli`: the ``featurestore`` command;
- :mod:`featurestore_app.demo`: the main job on the embedded default (``make demo``);
- :mod:`featurestore_app.report`: notebooks executed into an offline HTML report;
- :mod:`featurestore_app.distributed`: extraction and probe jobs on dask.distributed;
- :mod:`featurestore_app.service`: ``featurestore serve`` (HTTP, read-only).
"""
