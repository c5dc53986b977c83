"""``sandbox reproduce``: turn one production DAG run into a scenario that replays it locally.

access.py    production endpoints and credentials (environment or a file the user names)
source.py    read-only reads of production: Airflow REST v2, MLflow, S3 -> a ``ProductionRun``
data.py      copy the run's split into a sandbox's S3 and check its content hash
scenario.py  ``ProductionRun`` -> a commented, validated scenario file
cli.py       the ``reproduce`` subcommand (registered into ``sandbox.cli``)
"""
