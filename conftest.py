"""Root conftest: loads the harness's pytest plugin for both the tests and the scenario suites."""

pytest_plugins = ["sandbox.pytest_plugin"]
