"""The pipeline's step programs: ``python -m mlops_jobs {preprocess|train|evaluate}``.

Inputs are environment variables (the job contract in docs/architecture.md); the output is a JSON
object written to ``MLOPS_XCOM_PATH``. Modules import heavy libraries lazily: the jobs' start-up time
is part of every DAG run.
"""

__version__ = "0.1.0"
