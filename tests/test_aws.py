"""orch.aws: the boto3 facade against an in-process moto server (S3 uploads, buckets,
credentials), and the sandbox's dummy credentials living in one place."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from orch.aws import SANDBOX_ACCESS_KEY_ID, Aws
from orch.errors import AwsError, PackageError
from orch.package import PackageResult, build_package

SRC = Path(__file__).resolve().parents[1] / "src" / "orch"


class CountingS3:
    """Passes calls through to a real client and counts put_object calls."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.puts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def put_object(self, **kwargs: Any) -> Any:
        self.puts += 1
        return self.client.put_object(**kwargs)


@pytest.fixture
def package(tmp_path: Path) -> PackageResult:
    source = tmp_path / "fn"
    source.mkdir()
    (source / "handler.py").write_text("def handler(event, context):\n    return event\n")
    return build_package(source, "python3.12", tmp_path / "store", name="test-fn")


def test_upload_and_skip_when_present(moto_endpoint: str, package: PackageResult) -> None:
    aws = Aws.for_sandbox(moto_endpoint, "us-east-1")
    assert aws.ensure_bucket("orch-artifacts") is True
    assert aws.ensure_bucket("orch-artifacts") is False  # already there
    counting = CountingS3(aws.client("s3"))
    aws._clients["s3"] = counting

    bucket, key = aws.upload_package(package, "orch-artifacts")
    assert (bucket, key) == ("orch-artifacts", f"orch/packages/{package.sha256_hex}.zip")
    assert counting.puts == 1
    head = counting.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == package.size and head["Metadata"]["sha256"] == package.sha256_hex
    assert counting.get_object(Bucket=bucket, Key=key)["Body"].read() == package.path.read_bytes()

    assert aws.upload_package(package, "orch-artifacts") == (bucket, key)
    assert counting.puts == 1  # same content-addressed key and size: not uploaded again
    _, other = aws.upload_package(package, "orch-artifacts", key_prefix="x/")
    assert other == f"x/{package.sha256_hex}.zip" and counting.puts == 2


def test_bucket_outside_us_east_1_gets_its_location(moto_endpoint: str) -> None:
    aws = Aws.for_sandbox(moto_endpoint, "ap-northeast-2")
    aws.ensure_bucket("orch-seoul")
    assert aws.client("s3").get_bucket_location(Bucket="orch-seoul")["LocationConstraint"] == "ap-northeast-2"


def test_upload_to_a_missing_bucket_is_an_aws_error(moto_endpoint: str, package: PackageResult) -> None:
    with pytest.raises(AwsError) as err:
        Aws.for_sandbox(moto_endpoint, "us-east-1").upload_package(package, "no-such-bucket-here")
    text = str(err.value)
    assert "s3://no-such-bucket-here/orch/packages/" in text
    assert "NoSuchBucket" in text and "artifacts.bucket" in text


def test_upload_without_a_bucket_says_to_set_artifacts_bucket(tmp_path: Path) -> None:
    data = b"zip-bytes"
    result = PackageResult(tmp_path / "x.zip", hashlib.sha256(data).hexdigest(), "", 60 * 1024 * 1024, 0, 1)
    with pytest.raises(PackageError) as err:
        Aws.for_aws("eu-west-1").upload_package(result, None)
    assert "artifacts.bucket" in str(err.value) and "60.0 MB" in str(err.value)


def test_no_credentials_is_an_aws_error_naming_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(AwsError, match="no AWS credentials found") as err:
        Aws.for_aws("eu-west-1").check_credentials()
    assert "--sandbox" in str(err.value)
    Aws.for_sandbox("http://127.0.0.1:1", "eu-west-1").check_credentials()  # the sandbox needs none


def test_the_dummy_credentials_live_only_in_orch_aws() -> None:
    """No other module spells the sandbox's credentials: they import them from orch.aws."""
    credential = re.compile(
        r"(access_key|secret|Credentials\(|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN)"
        rf".*[\"']{re.escape(SANDBOX_ACCESS_KEY_ID)}[\"']"
    )
    spelled = []
    for path in SRC.rglob("*"):
        if path.name == "aws.py" or path.suffix not in (".py", ".j2"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if credential.search(line):
                spelled.append(f"{path.relative_to(SRC)}:{number}")
    assert spelled == []
    assert credential.search('Credentials("test", "test")') and credential.search('aws_access_key_id="test",')


def test_the_adoption_lookups_answer_against_a_real_moto_server(moto_endpoint: str) -> None:
    """orch.adopt's lookups through real botocore calls: found with tags, or None/empty when
    absent (IAM's NoSuchEntity, Lambda's and API Gateway's NotFound)."""
    import json

    import boto3

    aws = Aws.for_sandbox(moto_endpoint, "us-east-1")
    assert aws.find_role("orch-adopt-none") is None and aws.find_function("orch-adopt-none") is None
    assert aws.find_log_group("/aws/lambda/orch-adopt-none") is None and aws.find_rest_apis("orch-adopt-none") == []
    kwargs = {"endpoint_url": moto_endpoint, "region_name": "us-east-1", "aws_access_key_id": "test",
              "aws_secret_access_key": "test"}
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "lambda.amazonaws.com"}}]}
    boto3.client("iam", **kwargs).create_role(RoleName="orch-adopt", AssumeRolePolicyDocument=json.dumps(trust),
                                              Tags=[{"Key": "orch-stage", "Value": "dev"}])
    boto3.client("logs", **kwargs).create_log_group(logGroupName="/aws/lambda/orch-adopt",
                                                    tags={"orch-stage": "dev"})
    api = boto3.client("apigateway", **kwargs).create_rest_api(name="orch-adopt", tags={"orch-stage": "dev"})
    assert aws.find_role("orch-adopt").tags == {"orch-stage": "dev"}
    assert not aws.has_role_policy("orch-adopt", "logs")
    assert aws.find_log_group("/aws/lambda/orch-adopt").tags == {"orch-stage": "dev"}
    [found] = aws.find_rest_apis("orch-adopt")
    assert found.id == api["id"] and found.tags == {"orch-stage": "dev"}
    assert "/" in aws.rest_api_tree(api["id"]).resources
