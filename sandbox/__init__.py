"""mlops-sandbox: a local-first sandbox and test harness for an Airflow + MLflow platform."""

__version__ = "0.1.0"
