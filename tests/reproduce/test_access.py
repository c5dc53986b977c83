"""Production credentials and URLs: from the environment or a named file, never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.errors import ConfigError
from sandbox.reproduce.access import Production, endpoint_url, load_credentials

SECRET = "pr0d-Secret-Value"


def test_the_file_overrides_the_environment_and_quotes_are_stripped(tmp_path: Path) -> None:
    file = tmp_path / "prod.env"
    file.write_text(
        "# production, read-only user\n"
        f"export MLOPS_REPRO_AIRFLOW_PASSWORD='{SECRET}'\n"
        'MLOPS_REPRO_S3_SECRET_ACCESS_KEY="s3-key-value"\n'
        "\n"
    )
    env = {"MLOPS_REPRO_AIRFLOW_USERNAME": "viewer", "MLOPS_REPRO_AIRFLOW_PASSWORD": "from-env", "HOME": "/x"}
    creds = load_credentials(file, env)
    assert creds.get("MLOPS_REPRO_AIRFLOW_USERNAME") == "viewer"
    assert creds.get("MLOPS_REPRO_AIRFLOW_PASSWORD") == SECRET
    assert dict(creds.secrets()) == {
        "MLOPS_REPRO_AIRFLOW_PASSWORD": SECRET,
        "MLOPS_REPRO_S3_SECRET_ACCESS_KEY": "s3-key-value",
    }
    assert SECRET not in repr(creds)
    assert creds.origin == str(file)


def test_a_bad_credentials_file_names_the_line_but_never_echoes_it(tmp_path: Path) -> None:
    file = tmp_path / "prod.env"
    file.write_text(f"MLOPS_REPRO_AIRFLOW_USERNAME=viewer\nairflow password {SECRET}\n")
    with pytest.raises(ConfigError) as err:
        load_credentials(file, {})
    assert f"{file}:2: not a KEY=VALUE line" in err.value.what
    assert SECRET not in str(err.value)
    file.write_text(f"AIRFLOW_PASSWORD={SECRET}\n")
    with pytest.raises(ConfigError, match="unknown variable 'AIRFLOW_PASSWORD'") as err:
        load_credentials(file, {})
    assert SECRET not in str(err.value) and "MLOPS_REPRO_AIRFLOW_PASSWORD" in err.value.fix
    with pytest.raises(ConfigError, match="Cannot read the credentials file"):
        load_credentials(tmp_path / "missing.env", {})


def test_urls_with_credentials_are_refused_without_repeating_them() -> None:
    with pytest.raises(ConfigError) as err:
        endpoint_url(f"https://viewer:{SECRET}@airflow.example:8443/base", "Airflow", "--airflow-url")
    assert SECRET not in str(err.value)
    assert "--airflow-url https://airflow.example:8443/base" in err.value.fix
    with pytest.raises(ConfigError, match="is not an http"):
        endpoint_url("airflow.example", "Airflow", "--airflow-url")
    assert endpoint_url(" https://airflow.example/ ", "Airflow", "--airflow-url") == "https://airflow.example"


def test_airflow_needs_a_token_or_a_username_and_password() -> None:
    empty = Production("https://airflow.example", load_credentials(None, {}))
    with pytest.raises(ConfigError, match="No credentials for production Airflow") as err:
        empty.airflow_auth()
    assert "MLOPS_REPRO_AIRFLOW_TOKEN" in err.value.fix
    token = Production("https://a", load_credentials(None, {"MLOPS_REPRO_AIRFLOW_TOKEN": "t0ken-value"}))
    assert token.airflow_auth() == ("t0ken-value", "", "")
