"""Parts in object storage: `[engine] shared_dir = "s3://..."` against a real S3 endpoint on loopback (moto's
server speaks the S3 HTTP API and checks signatures against the access keys it issued), the demo audit on
a local Dask cluster of two workers: the same findings as the one-process audit, nothing left in the
bucket; credentials only from the environment; each way it cannot work is one line and exit 2."""

from __future__ import annotations

import json
import socket
import sys

import boto3
import httpx
import polars as pl
import pytest
import tomli_w
from moto.server import ThreadedMotoServer
from test_partitions import content, demo  # noqa: F401  (the module's demo retailer fixture)

from driftwatch.cli import run_cli
from driftwatch.exitcodes import ExitCode

BUCKET = "driftwatch-parts"
PREFIX = "nightly"


@pytest.fixture(scope="module")
def s3():
    """An S3 endpoint with a versioned bucket and one IAM user allowed to use it; signatures are checked
    from the moment the fixture hands it over."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    setup = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    setup |= {"aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
    client = boto3.client("s3", **setup)
    client.create_bucket(Bucket=BUCKET)
    # Versioned: a removed part leaves a delete marker, so a test can tell parts were written and removed.
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    iam = boto3.client("iam", **setup)
    iam.create_user(UserName="driftwatch")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="driftwatch", PolicyName="parts", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="driftwatch")["AccessKey"]
    httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()  # check every request
    yield {"endpoint": endpoint, "key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"inf")
    server.stop()


@pytest.fixture
def aws_env(s3, monkeypatch, tmp_path):
    """The environment a worker machine would have: the key in variables, no profile or instance role."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3["secret"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3["endpoint"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


def with_shared_dir(root, url: str):
    """The demo's config with `[engine] shared_dir = url` (no credential in it)."""
    import tomllib

    tables = tomllib.loads((root / "driftwatch.toml").read_text())
    tables["engine"] = {"shared_dir": url}
    path = root / "driftwatch-s3.toml"
    path.write_text(tomli_w.dumps(tables))
    return path


def bucket(s3) -> tuple[list[str], list[str]]:
    """Keys the bucket holds now, and keys that were written and removed since the fixture started."""
    client = boto3.client(
        "s3", endpoint_url=s3["endpoint"], region_name="us-east-1",
        aws_access_key_id=s3["key"], aws_secret_access_key=s3["secret"],
    )  # fmt: skip
    held = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    removed = [m["Key"] for m in client.list_object_versions(Bucket=BUCKET).get("DeleteMarkers", [])]
    return held, removed


def test_parts_in_s3_on_a_dask_cluster_of_two_workers_give_the_same_findings(demo, s3, aws_env, capsys):  # noqa: F811
    root, _, whole = demo
    config = with_shared_dir(root, f"s3://{BUCKET}/{PREFIX}")
    args = ["audit", "--config", str(config), "--format", "json", "--executor", "dask", "--workers", "2"]
    code = run_cli([*args, "--partitions", "4"])
    captured = capsys.readouterr()
    assert code == ExitCode.DRIFT, captured.err
    on_dask = pl.DataFrame(json.loads(captured.out), infer_schema_length=None)
    assert content(on_dask.with_columns(pl.col("impact").cast(pl.Decimal(18, 4)))).equals(whole)
    held, removed = bucket(s3)
    assert held == []  # every part, and the audit's marker, removed at its end
    parts = [k for k in removed if k.startswith(f"{PREFIX}/partitions-") and k.endswith(".parquet")]
    # Each comparison's two sides went through the bucket in (up to) four parts each.
    assert len({k.split("/")[2] for k in parts}) >= 8
    assert {k.split("/")[3] for k in parts} == {"expected", "actual"}
    assert {k.split("/")[4] for k in parts} == {f"_part={n}" for n in range(4)}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"AWS_SECRET_ACCESS_KEY": "not-the-secret"}, "the credentials in this machine's environment were refused"),
        ({"AWS_ACCESS_KEY_ID": "AKIANOTAKEY0000000", "AWS_SECRET_ACCESS_KEY": "x"}, "the credentials in this machine"),
        ({"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}, "no credentials in this machine's environment"),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:{closed}"}, "cannot reach the storage endpoint"),
        ({"BUCKET": "no-such-bucket"}, "not found (does the bucket exist?)"),
    ],
)
def test_what_keeps_s3_from_working_is_one_line_before_any_work(demo, s3, aws_env, capsys, change, message):  # noqa: F811
    root, _, _ = demo
    for name, value in change.items():
        if name == "BUCKET":
            continue
        if value is None:
            aws_env.delenv(name)
        else:
            aws_env.setenv(name, value.format(closed=_closed_port()))
    url = f"s3://{change.get('BUCKET', BUCKET)}/{PREFIX}"
    code = run_cli(["audit", "--config", str(with_shared_dir(root, url)), "--partitions", "2"])
    captured = capsys.readouterr()
    assert code == ExitCode.USER_ERROR
    assert captured.out == "" and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(f"error: {url}: writing the parts: {message}"), captured.err
    assert s3["secret"] not in captured.err


def test_without_the_s3_extra_object_storage_is_a_one_line_error(demo, aws_env, capsys):  # noqa: F811
    root, _, _ = demo
    from fsspec.registry import _registry

    aws_env.setitem(sys.modules, "s3fs", None)  # as if `driftwatch[s3]` were not installed
    # fsspec keeps the class of a protocol it has imported once (an earlier test's); forget it for this one.
    aws_env.delitem(_registry, "s3", raising=False)
    url = f"s3://{BUCKET}/{PREFIX}"
    code = run_cli(["audit", "--config", str(with_shared_dir(root, url)), "--partitions", "2"])
    assert code == ExitCode.USER_ERROR
    err = capsys.readouterr().err
    assert err == f"error: {url}: reading object storage needs an extra: pip install 'driftwatch[s3]'\n"
