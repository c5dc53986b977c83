"""The scenario-file corpus is data for test_corpus.py, never scenarios to run: pytest must not
collect these files (most of them declare ``apiVersion: mlops-sandbox/v1``)."""

collect_ignore_glob = ["bad/*", "good/*"]
