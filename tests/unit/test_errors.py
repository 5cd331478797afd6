"""errors.py: the one scrubbed exception summary and the one registry every process boundary uses."""

from __future__ import annotations

import pytest

from sqlembed import errors as e


def test_summary_is_type_and_first_line_cut_to_the_limit() -> None:
    assert e.summary(ValueError("first\nsecond")) == "ValueError: first"
    assert e.summary(KeyError()) == "KeyError"
    assert len(e.summary(ValueError("x" * 1000), limit=50)) == 50


def test_summary_keeps_the_python_error_below_a_jvm_preamble() -> None:
    text = "An error occurred while calling o123.collect.\n  File \"x.py\"\nValueError: the real one\n\tat org.apache"
    assert e.summary(RuntimeError(text)) == "ValueError: the real one"
    py4j = "An error occurred while calling o1.collect.\n: org.apache.spark.SparkException: Job 0 cancelled"
    assert e.summary(RuntimeError(py4j)) == "org.apache.spark.SparkException: Job 0 cancelled"
    # One line that names an error is kept whole, with its own type in front.
    line = "Driver Error: refused; DDBC Error: TCP"
    assert e.summary(OSError(line)) == f"OSError: {line}"


@pytest.mark.parametrize("text", [
    "Server=db;UID=sa;PWD=S3cret-1;Encrypt=yes", "Server=db;Password={S3cret-1;x};", "mssql+pyodbc://sa:S3cret-1@db/x",
    "login failed accesstoken=S3cret-1", "api_key: S3cret-1",
])
def test_summary_never_shows_a_password_or_token(text: str) -> None:
    out = e.summary(RuntimeError(text))
    assert "S3cret-1" not in out and "<secret>" in out


def test_summary_replaces_the_secrets_it_is_given() -> None:
    assert e.summary(RuntimeError("key abc123 refused"), secrets=("abc123",)) == "RuntimeError: key <secret> refused"


@pytest.mark.parametrize("exc", [
    e.Overloaded("full", retry_after=3.0), e.InvalidInput("bad", param="input"), e.NotReady("loading"),
    e.UnprocessableInput("too wide", param="dimensions"), e.DatabaseUnavailable("down"), e.JobNotFound("no"),
])
def test_every_domain_error_crosses_a_process_boundary_as_itself(exc: e.SqlembedError) -> None:
    back = e.from_wire(e.to_wire(exc))
    assert type(back) is type(exc) and back.message == exc.message and back.param == exc.param
    assert getattr(back, "retry_after", None) == getattr(exc, "retry_after", None)


def test_every_domain_error_is_in_the_registry() -> None:
    """Every domain error of the package (all its modules imported first) is in errors.py's registry."""
    import contextlib
    import importlib

    from tests.support.imports import modules

    for name in modules():
        if name.endswith("__main__"):
            continue
        with contextlib.suppress(ImportError):  # GPU modules where their libraries are not installed
            importlib.import_module(name)

    def subclasses(c: type) -> set[type]:
        return {c} | {s for d in c.__subclasses__() for s in subclasses(d)}
    assert set(e.WIRE.values()) == subclasses(e.SqlembedError) - {e.DeployError}


def test_a_foreign_error_crosses_as_its_type_only() -> None:
    body = e.to_wire(RuntimeError("CUDA out of memory at 0xdeadbeef"))
    back = e.from_wire(body)
    assert type(back) is e.SqlembedError and back.message == "the engine failed: RuntimeError"
    assert body["detail"] == "RuntimeError: CUDA out of memory at 0xdeadbeef"  # the receiver's log only
