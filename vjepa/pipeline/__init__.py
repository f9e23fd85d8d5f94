"""The platform: spec -> stage graph -> dvc.yaml/params.yaml; executors; runner; results.

Modules: ``spec`` (read a spec + overrides), ``schema`` (typed checks), ``compose`` (Hydra),
``compiler`` (stage graph), ``graph`` (uids), ``dvcio`` (files, DVC status/commit), ``runner``,
``status``, ``executors``; ``results``/``tables``/``plots`` are pure data code the report stage shares.
"""
