"""Redaction fails closed: generated secrets never reach a report, a bundle or the terminal, also when
the secrets cannot be read. No processes here; tests/local/test_local_stack.py greps a real run's
reports and bundles."""

from __future__ import annotations

from pathlib import Path

from sandbox.backends.local.backend import LocalBackend
from sandbox.redaction import MASK, Redactor, redact, secret_shaped
from sandbox.secrets import REDACTED_KEYS, USERNAME_KEYS, SecretStore, generate


def test_every_generated_secret_has_the_shape_the_fail_closed_mask_catches() -> None:
    for _ in range(300):
        values = generate()
        for key in REDACTED_KEYS:
            assert secret_shaped(values[key]), (key, values[key])
        for key in USERNAME_KEYS:
            assert not secret_shaped(values[key])


def test_known_values_are_masked_longest_first_and_short_ones_left_alone() -> None:
    assert redact("pw=abcdefgh key=abcdefghij x=abc", ["abcdefgh", "abcdefghij", "abc"]) == (
        f"pw={MASK} key={MASK} x=abc"
    )


def test_unreadable_secrets_mask_by_shape_and_say_so(tmp_path: Path) -> None:
    store = SecretStore(tmp_path)
    values = store.load_or_create_secrets()
    store.secrets_file.write_text("not a key value line\n")
    redactor = store.redactor()
    assert not redactor.complete and "unreadable" in (redactor.notice() or "")
    text = "\n".join(f"{k}={values[k]}" for k in REDACTED_KEYS) + "\nrun sbx__happy done; user admin"
    masked = redactor(text)
    for key in REDACTED_KEYS:
        assert values[key] not in masked
    assert "user admin" in masked and "run sbx__happy done" in masked


def test_a_missing_secrets_file_is_also_a_reason_to_mask_by_shape(tmp_path: Path) -> None:
    redactor = SecretStore(tmp_path / "never-started").redactor()
    assert not redactor.complete
    assert redactor(generate()["AWS_SECRET_ACCESS_KEY"]) == MASK


def test_a_complete_redactor_masks_only_the_values() -> None:
    redactor = Redactor(["s3cr3t-v4lue"])
    assert redactor.complete and redactor.notice() is None
    assert redactor("a s3cr3t-v4lue and platform-b4f2506b7755abc") == f"a {MASK} and platform-b4f2506b7755abc"


def test_the_local_bundle_is_masked_even_when_the_secrets_file_is_damaged(tmp_path: Path) -> None:
    backend = LocalBackend("damaged", state_root=tmp_path / "state")
    values = backend.secrets.load_or_create_secrets()
    backend.state.ensure_dirs()
    leak = "\n".join(f"a service logged {k}={values[k]}" for k in REDACTED_KEYS)
    backend.state.log_file("mlflow").write_text(leak + "\n")
    (backend.state.airflow_home / "logs").mkdir(parents=True)
    (backend.state.airflow_home / "logs" / "task.log").write_text(leak + "\n")
    backend.secrets.secrets_file.write_text("garbage without an equals sign\n")

    bundle = backend.diagnostics(tmp_path / "bundle")
    files = [p for p in bundle.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"mlflow.log", "task.log", "REDACTION-NOTICE.txt"}
    for path in files:
        text = path.read_text()
        for key in REDACTED_KEYS:
            assert values[key] not in text, (path, key)
    assert "unreadable" in (bundle / "REDACTION-NOTICE.txt").read_text()
