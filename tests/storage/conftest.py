"""Fixtures shared by the storage tests.

The conformance suite runs once per backend through the ``StoreTests`` subclasses of
``test_store_conformance.py``.  S3 runs against one moto server per session (in a thread,
on a free local port); each test gets its own prefix in one bucket.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from oxen.storage.retry import RetryPolicy

MiB = 1024 * 1024
#: Retry delays small enough that failure paths take milliseconds.
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.001, throttle_delay=0.002, max_delay=0.01)
#: moto enforces S3's 5 MiB minimum for every part but the last.
S3_PART = 5 * MiB
S3_TEST_OPTIONS: dict[str, Any] = {
    "multipart_threshold": 6 * MiB,
    "part_size": S3_PART,
    "list_page_size": 50,
    "list_threshold": 16,
    "retry": FAST_RETRY,
}
CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing"}


@pytest.fixture(scope="session")
def aws_env() -> Iterator[None]:
    """Keep the developer's AWS config and credentials out of the tests."""
    with pytest.MonkeyPatch.context() as mp:
        for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
            mp.delenv(var, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield


@pytest.fixture(scope="session")
def moto_endpoint(aws_env: None) -> Iterator[str]:
    """A moto S3 server in a thread for the whole session."""
    pytest.importorskip("aiobotocore")
    server_mod = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def make_bucket(moto_endpoint: str) -> Callable[[str], str]:
    """Create a bucket on the moto server (synchronously, with boto3)."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )

    def make(name: str) -> str:
        client.create_bucket(Bucket=name)
        return name

    return make


@pytest.fixture(scope="session")
def s3_bucket(make_bucket: Callable[[str], str]) -> str:
    return make_bucket("oxen-test")


@pytest.fixture
def s3_options() -> dict[str, Any]:
    """Constructor options for test S3 stores: moto credentials, small pages, fast retries."""
    return {**CREDENTIALS, **S3_TEST_OPTIONS}
