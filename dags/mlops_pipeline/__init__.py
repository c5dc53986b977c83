"""Helpers of the train_model_pipeline DAG: step descriptions, the local operator, the task builder."""
