"""What the sandbox deploys: the platform's configuration read from the charts' values files (no helm
at run time), and the one hook the sandbox adds to Airflow (``airflow_local_settings.py``)."""
