"""The one boto3 facade: clients for the sandbox or real AWS, the credentials check, S3 buckets
and package uploads, AWS failures as AwsError.

This module owns the sandbox's dummy credentials (everything else imports them from here)
and how a boto3 client is built for each target. It imports boto3 only when a client is
needed, so importing it is cheap. It knows nothing about stages, Terraform or the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orch.errors import AwsError, AwsNotFound, PackageError

# The sandbox emulator accepts any credentials; these are the ones orch, Terraform's provider
# and the gateway's workers use there. Never real ones.
SANDBOX_ACCESS_KEY_ID = "test"
SANDBOX_SECRET_ACCESS_KEY = "test"
SANDBOX_SESSION_TOKEN = "test"
SANDBOX_CREDENTIALS_ENV = {
    "AWS_ACCESS_KEY_ID": SANDBOX_ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": SANDBOX_SECRET_ACCESS_KEY,
    "AWS_SESSION_TOKEN": SANDBOX_SESSION_TOKEN,
}


CHECK_TIMEOUTS = {"connect_timeout": 5, "read_timeout": 10, "retries": {"max_attempts": 2, "mode": "standard"}}
"""botocore Config of the reachability check: at most two attempts of 5 s to connect and 10 s to
answer (so about 30 s when AWS answers nothing at all; a refused connection fails at once)."""


def sandbox_client_kwargs(endpoint: str, region: str) -> dict[str, str]:
    """boto3 client keyword arguments for the sandbox emulator at `endpoint`."""
    return {
        "endpoint_url": endpoint,
        "region_name": region,
        "aws_access_key_id": SANDBOX_ACCESS_KEY_ID,
        "aws_secret_access_key": SANDBOX_SECRET_ACCESS_KEY,
    }


@dataclass(frozen=True)
class Found:
    """An AWS object found by name: its id, its tags, when it was created (epoch seconds)."""

    id: str
    tags: Mapping[str, str] = field(default_factory=dict)
    created: float = 0.0


@dataclass(frozen=True)
class MethodInfo:
    """One method of an API Gateway resource: whether it has an integration, and the status
    codes of its method responses and integration responses."""

    integration: bool = False
    method_responses: frozenset[str] = frozenset()
    integration_responses: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ApiTree:
    """What a REST API holds: resource path -> (resource id, HTTP method -> MethodInfo), its
    request validators (name -> id) and its stage names."""

    resources: Mapping[str, tuple[str, Mapping[str, MethodInfo]]] = field(default_factory=dict)
    validators: Mapping[str, str] = field(default_factory=dict)
    stages: frozenset[str] = frozenset()


NOT_FOUND_CODES = frozenset({"NoSuchEntity", "ResourceNotFoundException", "NotFoundException", "404", "NotFound",
                             "NoSuchKey", "NoSuchBucket"})
"""AWS error codes that mean "no such thing" (IAM, Lambda, API Gateway, S3)."""


@dataclass
class Aws:
    """boto3 clients for one region of one target: the sandbox emulator (`endpoint`) or real AWS.

    Clients are built on first use and kept for this object's life (one per service).
    """

    region: str
    endpoint: str | None = None
    # botocore.config.Config keyword arguments for every client (timeouts, retries), e.g. for
    # calls that must end within a bound (orch.smoke)
    client_config: dict[str, Any] | None = None
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def for_sandbox(cls, endpoint: str, region: str) -> Aws:
        return cls(region, endpoint)

    @classmethod
    def for_aws(cls, region: str) -> Aws:
        return cls(region)

    @property
    def sandbox(self) -> bool:
        return self.endpoint is not None

    def client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3

            extra: dict[str, Any] = {}
            if self.client_config:
                from botocore.config import Config

                extra["config"] = Config(**self.client_config)
            if self.endpoint is not None:
                self._clients[service] = boto3.client(
                    service, **sandbox_client_kwargs(self.endpoint, self.region), **extra)
            else:
                self._clients[service] = boto3.client(service, region_name=self.region, **extra)
        return self._clients[service]

    def check_credentials(self) -> str | None:
        """Fail (AwsError, exit 5) unless AWS is reachable and accepts the credentials, within
        seconds, before Terraform starts (whose provider would retry for minutes). Returns the
        credentials' AWS account id (None in the sandbox, or when STS did not name one).

        Finds credentials through the standard chain
        (https://boto3.amazonaws.com/v1/documentation/api/latest/guide/credentials.html), then
        calls STS GetCallerIdentity, which needs no permission
        (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html), with
        CHECK_TIMEOUTS. The error names the endpoint it could not reach.
        """
        if self.sandbox:
            return None
        import boto3
        import botocore.exceptions
        from botocore.config import Config

        from orch.redact import register_aws_credentials

        session = boto3.Session(region_name=self.region)
        try:
            creds = session.get_credentials()
            frozen = creds.get_frozen_credentials() if creds is not None else None
        except botocore.exceptions.BotoCoreError as exc:
            raise AwsError(f"could not read AWS credentials: {exc}.") from None
        if frozen is None:
            raise AwsError(
                "no AWS credentials found (checked the environment, AWS_PROFILE, shared "
                "config/credentials files, SSO and instance metadata).",
                hint="Run `aws configure` or `aws sso login`, or export AWS_PROFILE / "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. To try orch without AWS, add --sandbox.",
            )
        register_aws_credentials(more=(frozen.access_key, frozen.secret_key, frozen.token),
                                 dummies=SANDBOX_CREDENTIALS_ENV.values())
        sts = session.client("sts", config=Config(**CHECK_TIMEOUTS))
        endpoint = sts.meta.endpoint_url
        try:
            identity = sts.get_caller_identity()
        except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError,
                botocore.exceptions.ReadTimeoutError, botocore.exceptions.ProxyConnectionError,
                botocore.exceptions.SSLError, botocore.exceptions.ConnectionClosedError) as exc:
            raise AwsError(
                f"cannot reach AWS at {endpoint} (region {self.region}): {type(exc).__name__}; orch stopped "
                "before Terraform started.",
                hint="Check the network, a proxy (HTTPS_PROXY) or firewall, and AWS_ENDPOINT_URL* settings; "
                "to try orch without AWS, add --sandbox.",
            ) from None
        except botocore.exceptions.ClientError as exc:
            raise AwsError(
                f"AWS at {endpoint} refused the credentials: {error_code(exc)}: "
                f"{exc.response.get('Error', {}).get('Message', '')}",
                hint="Renew them (`aws sso login`, new keys) or pick another AWS_PROFILE.",
            ) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise AwsError(f"checking the credentials at {endpoint} failed: {exc}.") from None
        return str(identity.get("Account") or "") or None

    def ensure_bucket(self, bucket: str, region: str | None = None) -> bool:
        """Create `bucket` unless it exists; True when it was created.

        Used in the sandbox only (its S3 starts empty); on real AWS users bring their own
        buckets. CreateBucket outside us-east-1 needs a LocationConstraint:
        https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html
        """
        import botocore.exceptions

        s3 = self.client("s3")
        where = region or self.region
        try:
            s3.head_bucket(Bucket=bucket)
            return False
        except botocore.exceptions.ClientError:
            pass
        try:
            if where == "us-east-1":
                s3.create_bucket(Bucket=bucket)
            else:
                s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": where})
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise aws_error(f"creating the bucket s3://{bucket} failed", exc) from None
        return True

    def ensure_hosted_zone(self, zone: str) -> bool:
        """Create a public Route 53 hosted zone named `zone` unless one exists; True when created.

        Used in the sandbox only (its Route 53 starts empty, and modules/domain looks the zone
        up); on real AWS the zone is the user's. Zone names compare without the final dot:
        https://docs.aws.amazon.com/Route53/latest/APIReference/API_ListHostedZonesByName.html
        """
        import uuid

        import botocore.exceptions

        route53 = self.client("route53")
        wanted = zone.rstrip(".").lower()
        try:
            found = route53.list_hosted_zones_by_name(DNSName=wanted).get("HostedZones", [])
            if any(z["Name"].rstrip(".").lower() == wanted for z in found):
                return False
            route53.create_hosted_zone(Name=wanted, CallerReference=f"orch-{uuid.uuid4().hex}")
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise aws_error(f"creating the hosted zone {wanted} failed", exc) from None
        return True

    def put_page(self, bucket: str, key: str, text: str) -> str:
        """Upload an HTML page to `s3://bucket/key` (Content-Type text/html; UTF-8); return its
        s3:// address. Raises AwsError when S3 refuses."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client("s3").put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"),
                                         ContentType="text/html; charset=utf-8")
        except (ClientError, BotoCoreError) as exc:
            raise aws_error(f"uploading the docs page to s3://{bucket}/{key} failed", exc) from exc
        return f"s3://{bucket}/{key}"

    def upload_package(self, package: Any, bucket: str | None, *,
                       key_prefix: str = "orch/packages/") -> tuple[str, str]:
        """Upload a built package (orch.package.PackageResult: `path`, `sha256_hex`, `size`) to
        `s3://bucket/<key_prefix><sha256-hex>.zip`; return (bucket, key).

        The key is content-addressed, so an object already there with the same size is not
        uploaded again. Raises PackageError when no bucket is configured, AwsError when S3 fails.
        """
        path, sha256_hex, size = package.path, package.sha256_hex, package.size
        if not bucket:
            raise PackageError(
                f"the function package {path} is {size / (1024 * 1024):.1f} MB, over Lambda's 50 MB "
                "direct-upload limit, so it must go through S3, but no bucket is configured",
                hint="set `artifacts.bucket` in the stage file to an S3 bucket orch may write to "
                "(in the same region as the function)",
            )
        from botocore.exceptions import BotoCoreError, ClientError

        s3 = self.client("s3")
        key = f"{key_prefix}{sha256_hex}.zip"
        where = f"s3://{bucket}/{key}"
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            # 403 also means "not there" when the caller may put but not list.
            if error_code(exc) not in {"404", "NoSuchKey", "NotFound", "403", "AccessDenied"}:
                raise aws_error(f"checking {where} failed", exc) from exc
        except BotoCoreError as exc:
            raise aws_error(f"checking {where} failed", exc) from exc
        else:
            if head.get("ContentLength") == size:
                return bucket, key
        try:
            with open(path, "rb") as body:
                s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/zip",
                              Metadata={"sha256": sha256_hex})
        except OSError as exc:
            raise PackageError(f"cannot read the function package {path}: {exc.strerror or exc}",
                               hint="build the package again") from exc
        except (ClientError, BotoCoreError) as exc:
            raise aws_error(f"uploading {path} to {where} failed", exc) from exc
        return bucket, key

    # ------------------------------------------------------------------ verified releases
    # Reads for the smoke checks, release records in S3, `orch logs` and `orch invoke`.

    def with_config(self, client_config: dict[str, Any]) -> Aws:
        """The same target and region, with clients built with `client_config` (botocore
        Config keyword arguments: timeouts, retries)."""
        return Aws(self.region, self.endpoint, client_config)

    def call(self, service: str, operation: str, what: str, **kwargs: Any) -> dict[str, Any]:
        """One AWS API call, `client(service).<operation>(**kwargs)`, its answer as a dict.

        Raises AwsNotFound for AWS's not-found errors (ResourceNotFoundException, NotFound,
        NoSuchKey, 404), AwsError naming `what` for any other failure, including an
        endpoint that does not answer.
        """
        import botocore.exceptions

        try:
            return getattr(self.client(service), operation)(**kwargs)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                raise AwsNotFound(f"{what}: {error_message(exc)}") from None
            raise aws_error(what, exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise AwsError(f"{what}: {exc}", hint="check that the endpoint is reachable, then retry") from None

    def put_json(self, bucket: str, key: str, document: Any) -> None:
        """Write `document` as a JSON object `s3://bucket/key`."""
        import json

        self.call("s3", "put_object", f"writing s3://{bucket}/{key}", Bucket=bucket, Key=key,
                  Body=json.dumps(document, indent=2, sort_keys=True).encode(), ContentType="application/json")

    def get_json(self, bucket: str, key: str) -> Any:
        """The JSON object `s3://bucket/key` (AwsNotFound when there is none)."""
        import json

        answer = self.call("s3", "get_object", f"reading s3://{bucket}/{key}", Bucket=bucket, Key=key)
        return json.loads(answer["Body"].read())

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        """Every key under `prefix` in `bucket`, sorted (ListObjectsV2, all pages)."""
        keys: list[str] = []
        token: dict[str, str] = {}
        while True:
            page = self.call("s3", "list_objects_v2", f"listing s3://{bucket}/{prefix}", Bucket=bucket,
                             Prefix=prefix, **token)
            keys += [item["Key"] for item in page.get("Contents") or ()]
            if not page.get("IsTruncated"):
                return sorted(keys)
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def log_events(self, group: str, *, start_ms: int, pattern: str | None = None,
                   token: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of FilterLogEvents on `group` from `start_ms` (epoch ms): (events, next token).

        `pattern` is a CloudWatch Logs filter pattern:
        https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html
        """
        kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start_ms, "interleaved": True}
        if pattern:
            kwargs["filterPattern"] = pattern
        if token:
            kwargs["nextToken"] = token
        page = self.call("logs", "filter_log_events", f"reading the log group {group}", **kwargs)
        return list(page.get("events") or ()), page.get("nextToken")

    def invoke(self, function_name: str, qualifier: str, payload: bytes, *, tail: bool) -> dict[str, Any]:
        """Lambda Invoke (RequestResponse) of `function_name:qualifier`: the answer's
        `Payload` read into bytes, `FunctionError`, `LogResult` (base64, with `tail`) and
        `ExecutedVersion`. https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html"""
        answer = self.call("lambda", "invoke", f"invoking {function_name}:{qualifier}", FunctionName=function_name,
                           Qualifier=qualifier, Payload=payload, LogType="Tail" if tail else "None")
        body = answer.get("Payload")
        return {**answer, "Payload": body.read() if hasattr(body, "read") else (body or b"")}

    # -- code-only releases (orch sync) --------------------------------------------------

    # ------------------------------------------------------------------ lookups (orch.adopt)
    # Each answers None / False / empty when the object does not exist, and raises AwsError
    # naming the call for any other failure (no permission, unreachable).

    def _ask(self, what: str, call: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call(**kwargs)
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None
            raise aws_error(f"looking up {what} failed", exc) from None
        except BotoCoreError as exc:
            raise aws_error(f"looking up {what} failed", exc) from None

    def read_object(self, bucket: str, key: str) -> bytes | None:
        """The body of s3://bucket/key, or None when it does not exist (S3 GetObject)."""
        answer = self._ask(f"s3://{bucket}/{key}", self.client("s3").get_object, Bucket=bucket, Key=key)
        return None if answer is None else answer["Body"].read()

    def find_role(self, name: str) -> Found | None:
        """IAM GetRole (its Tags are part of the answer):
        https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetRole.html"""
        answer = self._ask(f"IAM role {name}", self.client("iam").get_role, RoleName=name)
        if answer is None:
            return None
        role = answer["Role"]
        return Found(role["RoleName"], {t["Key"]: t["Value"] for t in role.get("Tags", [])})

    def has_role_policy(self, role: str, policy: str) -> bool:
        """IAM GetRolePolicy: whether `role` has the inline policy `policy`."""
        return self._ask(f"policy {policy} of role {role}", self.client("iam").get_role_policy,
                         RoleName=role, PolicyName=policy) is not None

    def find_log_group(self, name: str) -> Found | None:
        """CloudWatch Logs DescribeLogGroups (exact name) and ListTagsForResource."""
        logs = self.client("logs")
        answer = self._ask(f"log group {name}", logs.describe_log_groups, logGroupNamePrefix=name)
        groups = [g for g in (answer or {}).get("logGroups", []) if g.get("logGroupName") == name]
        if not groups:
            return None
        arn = str(groups[0].get("arn", "")).removesuffix(":*")
        tags = self._ask(f"tags of log group {name}", logs.list_tags_for_resource, resourceArn=arn) or {}
        return Found(name, dict(tags.get("tags", {})), groups[0].get("creationTime", 0) / 1000)

    def find_function(self, name: str) -> Found | None:
        """Lambda GetFunction (with the function's Tags)."""
        answer = self._ask(f"Lambda function {name}", self.client("lambda").get_function, FunctionName=name)
        if answer is None:
            return None
        return Found(answer["Configuration"]["FunctionName"], dict(answer.get("Tags") or {}))

    def has_alias(self, function: str, alias: str) -> bool:
        return self._ask(f"alias {alias} of {function}", self.client("lambda").get_alias,
                         FunctionName=function, Name=alias) is not None

    def permission_ids(self, function: str, qualifier: str) -> frozenset[str]:
        """The statement ids of the resource policy of `function:qualifier` (Lambda GetPolicy)."""
        answer = self._ask(f"policy of {function}:{qualifier}", self.client("lambda").get_policy,
                           FunctionName=function, Qualifier=qualifier)
        if answer is None:
            return frozenset()
        return frozenset(s.get("Sid", "") for s in json.loads(answer["Policy"]).get("Statement", []))

    def find_rest_apis(self, name: str) -> list[Found]:
        """Every REST API named `name` (names are not unique), with tags and creation time."""
        apigw = self.client("apigateway")
        found = []
        position = None
        while True:
            kwargs = {"limit": 500, **({"position": position} if position else {})}
            page = self._ask("REST APIs", apigw.get_rest_apis, **kwargs) or {}
            for item in page.get("items", []):
                if item.get("name") == name:
                    created = item.get("createdDate")
                    stamp = created.timestamp() if hasattr(created, "timestamp") else 0.0
                    found.append(Found(item["id"], dict(item.get("tags") or {}), stamp))
            position = page.get("position")
            if not position:
                return found

    def rest_api_tree(self, api_id: str) -> ApiTree:
        """The resources, methods (with their integration and responses), request validators
        and stages of a REST API (GetResources, GetMethod, GetRequestValidators, GetStages)."""
        apigw = self.client("apigateway")
        resources: dict[str, tuple[str, dict[str, MethodInfo]]] = {}
        position = None
        while True:
            kwargs = {"restApiId": api_id, "limit": 500, **({"position": position} if position else {})}
            page = self._ask(f"resources of REST API {api_id}", apigw.get_resources, **kwargs) or {}
            for item in page.get("items", []):
                methods = {}
                for http_method in item.get("resourceMethods") or {}:
                    method = self._ask(f"method {http_method} {item['path']}", apigw.get_method, restApiId=api_id,
                                       resourceId=item["id"], httpMethod=http_method)
                    if method is None:
                        continue
                    integration = method.get("methodIntegration")
                    methods[http_method] = MethodInfo(
                        integration is not None,
                        frozenset(method.get("methodResponses") or {}),
                        frozenset((integration or {}).get("integrationResponses") or {}),
                    )
                resources[item["path"]] = (item["id"], methods)
            position = page.get("position")
            if not position:
                break
        validators = self._ask(f"request validators of REST API {api_id}", apigw.get_request_validators,
                               restApiId=api_id) or {}
        stages = self._ask(f"stages of REST API {api_id}", apigw.get_stages, restApiId=api_id) or {}
        return ApiTree(
            resources,
            {v["name"]: v["id"] for v in validators.get("items", []) if "name" in v},
            frozenset(s["stageName"] for s in stages.get("item", [])),
        )

    def live_code(self, function_name: str, alias: str) -> LiveCode:
        """What ``function_name``'s alias serves now: its version and that version's
        CodeSha256 (base64). Raises FunctionNotFound when the function or the alias does not
        exist, AwsError for other failures.
        https://docs.aws.amazon.com/lambda/latest/api/API_GetAlias.html
        """
        from botocore.exceptions import BotoCoreError, ClientError

        lam = self.client("lambda")
        try:
            version = lam.get_alias(FunctionName=function_name, Name=alias)["FunctionVersion"]
            config = lam.get_function_configuration(FunctionName=function_name, Qualifier=version)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise FunctionNotFound(f"the function {function_name} has no alias {alias!r} here.") from None
            raise aws_error(f"reading alias {alias!r} of {function_name} failed", exc) from exc
        except BotoCoreError as exc:
            raise aws_error(f"reading alias {alias!r} of {function_name} failed", exc) from exc
        return LiveCode(function_name, alias, str(version), config["CodeSha256"])

    def update_function_code(self, function_name: str, *, zip_file: Any = None,
                             s3: tuple[str, str] | None = None, timeout: float = 300.0) -> str:
        """Replace the code of ``function_name``'s $LATEST with a zip (``zip_file``: a path)
        or an S3 object (``s3``: bucket, key) and wait until Lambda finished the update
        (LastUpdateStatus Successful, polled every second up to ``timeout`` seconds); return
        the new CodeSha256 (base64). Terraform's state is not touched. Raises AwsError.
        https://docs.aws.amazon.com/lambda/latest/api/API_UpdateFunctionCode.html
        https://docs.aws.amazon.com/lambda/latest/dg/functions-states.html (updates are asynchronous)
        """
        from botocore.exceptions import BotoCoreError, ClientError, WaiterError

        lam = self.client("lambda")
        where = f"updating the code of {function_name}"
        try:
            if s3 is not None:
                answer = lam.update_function_code(FunctionName=function_name, S3Bucket=s3[0], S3Key=s3[1])
            else:
                with open(zip_file, "rb") as body:
                    answer = lam.update_function_code(FunctionName=function_name, ZipFile=body.read())
            if answer.get("LastUpdateStatus", "Successful") != "Successful":
                lam.get_waiter("function_updated_v2").wait(
                    FunctionName=function_name,
                    WaiterConfig={"Delay": 1, "MaxAttempts": max(1, int(timeout))},
                )
        except OSError as exc:
            raise PackageError(f"cannot read the function package {zip_file}: {exc.strerror or exc}",
                               hint="build the package again") from exc
        except WaiterError as exc:
            raise AwsError(f"{where}: Lambda did not finish the update ({exc}).",
                           hint="check the function in the Lambda console, then run the command again") from exc
        except (ClientError, BotoCoreError) as exc:
            raise aws_error(where, exc) from exc
        return str(answer["CodeSha256"])

    def publish_version(self, function_name: str, code_sha256: str, description: str = "") -> str:
        """Publish $LATEST as a new version, only if its code is ``code_sha256`` (base64; Lambda
        refuses otherwise, so a concurrent update is never published by mistake); return the
        version number. Raises AwsError, also when the published code differs.
        https://docs.aws.amazon.com/lambda/latest/api/API_PublishVersion.html
        """
        from botocore.exceptions import BotoCoreError, ClientError

        lam = self.client("lambda")
        try:
            answer = lam.publish_version(FunctionName=function_name, CodeSha256=code_sha256,
                                         Description=description)
        except (ClientError, BotoCoreError) as exc:
            raise aws_error(f"publishing a version of {function_name} failed", exc) from exc
        if answer.get("CodeSha256") != code_sha256:  # what AWS checks itself; an emulator may not
            raise AwsError(
                f"publishing a version of {function_name}: version {answer.get('Version')} has code "
                f"{answer.get('CodeSha256')}, not the package's {code_sha256} (another update got there first?).",
                hint="run the command again",
            )
        return str(answer["Version"])

    def update_alias(self, function_name: str, alias: str, version: str) -> None:
        """Point ``function_name``'s alias at ``version``. Raises AwsError.
        https://docs.aws.amazon.com/lambda/latest/api/API_UpdateAlias.html
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client("lambda").update_alias(FunctionName=function_name, Name=alias, FunctionVersion=version)
        except (ClientError, BotoCoreError) as exc:
            raise aws_error(f"moving alias {alias!r} of {function_name} to version {version} failed", exc) from exc


    def function_code(self, function_name: str) -> tuple[str, str]:
        """(CodeSha256, Code.Location) of a function's $LATEST code: the base64 SHA-256 of its
        zip and a presigned URL that downloads it for 10 minutes (GetFunction:
        https://docs.aws.amazon.com/lambda/latest/api/API_GetFunction.html). Raises AwsError."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client("lambda").get_function(FunctionName=function_name)
        except (ClientError, BotoCoreError) as exc:
            raise aws_error(f"reading the deployed code of {function_name} failed", exc) from None
        return answer["Configuration"]["CodeSha256"], answer["Code"]["Location"]

def error_message(exc: Any) -> str:
    """AWS's code and message of a botocore ClientError."""
    code = error_code(exc)
    message = getattr(exc, "response", {}).get("Error", {}).get("Message", "") or str(exc)
    return f"{code}: {message}" if code else message


@dataclass(frozen=True)
class LiveCode:
    """What a function's alias serves: ``version`` and its ``code_sha256`` (base64, as
    Lambda's CodeSha256 and Terraform's source_code_hash)."""

    function_name: str
    alias: str
    version: str
    code_sha256: str


class FunctionNotFound(AwsError):
    """The function (or its alias) does not exist: the stage is not deployed there."""


def error_code(exc: Any) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def aws_error(what: str, exc: Exception) -> AwsError:
    """An AwsError saying what failed, AWS's code and message, and what to check."""
    code = error_code(exc)
    hints = {
        "NoSuchBucket": "create the bucket, or fix `artifacts.bucket` in the stage file",
        "AccessDenied": "the credentials need s3:PutObject (and s3:GetObject) on the bucket",
        "403": "the credentials need s3:PutObject (and s3:GetObject) on the bucket",
    }
    return AwsError(f"{what}: {error_message(exc)}",
                    hint=hints.get(code, "check the credentials, the region and the bucket, then retry"))
