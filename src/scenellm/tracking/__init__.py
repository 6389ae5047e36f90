"""Experiment tracking on MLflow: lineage tags, parent / child runs, the model registry.

- :mod:`scenellm.tracking.lineage`: git state, package versions and stage fingerprints as
  ``scenellm.*`` run tags, and :func:`~scenellm.tracking.lineage.parse_lineage` for audits.
- :mod:`scenellm.tracking.runs`: :class:`~scenellm.tracking.runs.Tracker`, explicit-client
  runs that are safe from threads and processes.
- :mod:`scenellm.tracking.registry`: the fine-tuned model as a pyfunc model, registered as
  ``scenellm`` with ``champion`` / ``challenger`` aliases.

Nothing is imported here: MLflow costs ~2 s to import.
"""
