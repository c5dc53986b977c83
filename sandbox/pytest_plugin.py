"""pytest plugin: options, fixtures and scenario collection (filled in by the scenario work)."""
