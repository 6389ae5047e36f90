"""Lineage audits: read back what a run recorded and verify every link.

``scenellm audit TARGET`` (TARGET: an MLflow run id, ``scenellm/3``, ``scenellm@champion``
or ``study:NAME/trial:N``):

- :mod:`scenellm.audit.targets`: TARGET → the MLflow run to audit.
- :mod:`scenellm.audit.recorded`: that run's lineage (tags, params, stage child runs).
- :mod:`scenellm.audit.checks`: one check per link (data, commit, params, each stage).
- :mod:`scenellm.audit.reproduce`: re-run evaluate (or the whole pipeline) and compare.
- :mod:`scenellm.audit.report`: :func:`~scenellm.audit.report.audit`, the verdict, JSON.
- :mod:`scenellm.audit.report_terminal` / :mod:`scenellm.audit.report_html`: the reports.

Nothing is imported here: MLflow and torch are slow to import.
"""
