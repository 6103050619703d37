"""Sends the same boto3 read calls to moto's S3 directly and through s3gate's
S3 front in front of that moto, and prints what each side saw as JSON.

    fidelity_check.py MOTO_URL GATEWAY_URL ACCESS_KEY_ID SECRET_ACCESS_KEY

The direct client signs with the keys moto issued; the gateway client with
dummy keys (the gateway's S3 front is anonymous and re-signs). For every call
the script records the status, the S3 error code, the parsed body and the
headers SDKs read, then compares the two sides; the output is
`{"cases": {NAME: {"direct": ..., "gateway": ...}}, "diffs": [...]}`.
tests/fidelity.rs asserts that `diffs` is empty and that the cases saw what
they are about (checksums, ranges, a bucket region, error codes).
"""

import json
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

BUCKET = "fid"
GHOST = "ghost"

# Response headers SDKs read, compared by value.
COMPARED_HEADERS = [
    "etag",
    "content-range",
    "content-length",
    "last-modified",
    "content-type",
    "accept-ranges",
    "x-amz-bucket-region",
    "x-amz-server-side-encryption",
    "x-amz-meta-origin",
]
# Compared by presence: request ids differ by nature.
PRESENT_HEADERS = ["x-amz-request-id", "x-amz-id-2"]
# Listings (re-encoded) and GetBucketLocation are written by the gateway:
# their length may differ.
LISTING_SKIPS = {"content-length", "content-type"}


def client(endpoint, key_id, secret):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            retries={"total_max_attempts": 1},
            connect_timeout=10,
            read_timeout=60,
        ),
    )


def headers_of(metadata, listing=False):
    headers = {k.lower(): v for k, v in metadata.get("HTTPHeaders", {}).items()}
    seen = {}
    for name, value in headers.items():
        if name.startswith("x-amz-checksum-") or name in COMPARED_HEADERS:
            if not (listing and name in LISTING_SKIPS):
                seen[name] = value
    for name in PRESENT_HEADERS:
        seen[name + "?"] = name in headers
    return seen


def plain(value):
    """The parsed body as JSON-able data (bytes hashed out, dates as text)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k not in ("ResponseMetadata", "Body")}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def call(s3, operation, listing=False, **kwargs):
    try:
        response = getattr(s3, operation)(**kwargs)
    except ClientError as e:
        # An error's body is the gateway's own (its message, not the store's),
        # so its length and type are not compared; the store's request id
        # reaches the client when the store sent one.
        metadata = e.response.get("ResponseMetadata", {})
        headers = headers_of(metadata, listing=True)
        # SDKs report the ids from the header or the body: compare what they report.
        headers.pop("x-amz-request-id?")
        headers.pop("x-amz-id-2?")
        # The gateway's own id is in x-request-id; the store's must be the one reported.
        own = {k.lower(): v for k, v in metadata.get("HTTPHeaders", {}).items()}.get("x-request-id")
        request_id = metadata.get("RequestId")
        return {
            "status": metadata.get("HTTPStatusCode"),
            "code": e.response.get("Error", {}).get("Code"),
            "headers": headers,
            "request_id": bool(request_id) and request_id != own,
            "host_id": bool(metadata.get("HostId")),
        }
    result = {
        "status": response["ResponseMetadata"]["HTTPStatusCode"],
        "code": None,
        "headers": headers_of(response["ResponseMetadata"], listing),
        "body": plain(response),
    }
    if "Body" in response:
        result["bytes"] = response["Body"].read().decode("latin-1")
    return result


def differs(direct, gateway):
    """Whether two sides differ. Request ids differ by nature (two requests):
    an error's request and host ids are compared by presence, when the store
    sent them (the gateway may report more: moto keeps its HostId in the body,
    the gateway also sends it as `x-amz-id-2`, as S3 does)."""
    direct, gateway = dict(direct), dict(gateway)
    for name in ("request_id", "host_id"):
        if not direct.get(name):
            direct.pop(name, None)
            gateway.pop(name, None)
    return direct != gateway


def cases(s3, etag):
    """(name, operation, rewritten, kwargs) of every read compared; the body
    of a `rewritten` answer is the gateway's own (LISTING_SKIPS)."""
    photo = {"Bucket": BUCKET, "Key": "photo.jpg"}
    listing = {"Bucket": BUCKET, "Prefix": "dir/"}
    return [
        ("get", "get_object", False, dict(photo)),
        ("get-checksum", "get_object", False, dict(photo, ChecksumMode="ENABLED")),
        ("head-checksum", "head_object", False, dict(photo, ChecksumMode="ENABLED")),
        ("range", "get_object", False, dict(photo, Range="bytes=2-5")),
        ("suffix-range", "get_object", False, dict(photo, Range="bytes=-3")),
        ("range-beyond", "get_object", False, dict(photo, Range="bytes=5000-")),
        ("if-none-match", "get_object", False, dict(photo, IfNoneMatch=etag)),
        ("if-match-other", "get_object", False, dict(photo, IfMatch='"other"')),
        ("if-unmodified-old", "get_object", False,
         dict(photo, IfUnmodifiedSince="Mon, 01 Jan 2001 00:00:00 GMT")),
        ("if-modified-old", "get_object", False,
         dict(photo, IfModifiedSince="Mon, 01 Jan 2001 00:00:00 GMT")),
        ("head", "head_object", False, dict(photo)),
        ("missing-key", "get_object", False, {"Bucket": BUCKET, "Key": "missing.jpg"}),
        ("missing-key-head", "head_object", False, {"Bucket": BUCKET, "Key": "missing.jpg"}),
        ("missing-bucket", "get_object", False, {"Bucket": GHOST, "Key": "photo.jpg"}),
        ("list-delimiter", "list_objects_v2", True, dict(listing, Delimiter="/")),
        ("list-all", "list_objects_v2", True, {"Bucket": BUCKET}),
        ("list-start-after", "list_objects_v2", True, dict(listing, StartAfter="dir/a")),
        ("list-page", "list_objects_v2", True, dict(listing, MaxKeys=2)),
        ("list-encoded", "list_objects_v2", True, dict(listing, EncodingType="url")),
        ("list-missing-bucket", "list_objects_v2", True, {"Bucket": GHOST}),
        ("head-bucket", "head_bucket", False, {"Bucket": BUCKET}),
        ("head-missing-bucket", "head_bucket", False, {"Bucket": GHOST}),
        # The gateway writes this answer itself (its length may differ).
        ("location", "get_bucket_location", True, {"Bucket": BUCKET}),
        ("location-missing-bucket", "get_bucket_location", False, {"Bucket": GHOST}),
    ]


def main():
    moto_url, gateway_url, key_id, secret = sys.argv[1:5]
    direct = client(moto_url, key_id, secret)
    gateway = client(gateway_url, "anything", "anything")
    etag = direct.head_object(Bucket=BUCKET, Key="photo.jpg")["ETag"]
    out = {"cases": {}, "diffs": []}
    for name, operation, listing, kwargs in cases(direct, etag):
        seen = {
            "direct": call(direct, operation, listing, **kwargs),
            "gateway": call(gateway, operation, listing, **kwargs),
        }
        out["cases"][name] = seen
        if differs(seen["direct"], seen["gateway"]):
            out["diffs"].append({"case": name, **seen})
    # The next page, from each side's own token.
    for side, s3 in (("direct", direct), ("gateway", gateway)):
        first = s3.list_objects_v2(Bucket=BUCKET, Prefix="dir/", MaxKeys=2)
        rest = call(s3, "list_objects_v2", True, Bucket=BUCKET, Prefix="dir/",
                    MaxKeys=2, ContinuationToken=first["NextContinuationToken"])
        out["cases"].setdefault("list-next-page", {})[side] = rest
    page = out["cases"]["list-next-page"]
    if differs(page["direct"], page["gateway"]):
        out["diffs"].append({"case": "list-next-page", **page})
    print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
