"""Drives boto3 against s3gate's S3 front and prints what it saw as JSON.

    boto3_check.py MODE GATEWAY_URL WORKDIR

MODE is `reads` (GetObject, HeadObject, ranges, response overrides, paginated
listings, download_file, GetBucketLocation, HeadBucket, a missing key) or
`writes` (what the gateway must refuse: PutObject, DeleteObject,
DeleteObjects, multipart upload, GetObjectAcl, GetBucketAcl, ListBuckets, a
bucket no integration serves), or, against a gateway whose S3 front needs
client keys, `keyed-reads` (what a client's valid key reads, ListBuckets of
each client), `keyed-refusals` (a wrong secret, an unknown key, a bucket or
prefix outside the client's scope, no signature, a clock 20 minutes behind)
and `keyed-presign` (presigned GetObject URLs, made offline). WORKDIR holds `plan.json` (what to read,
written by tests/clients.rs) and receives downloaded files. The script records facts
(hashes, lengths, headers, keys, error codes); tests/clients.rs checks them
against what it seeded. Any unexpected exception fails the script.
"""

import hashlib
import io
import json
import os
import sys

import datetime
import unittest.mock

import boto3
import botocore.auth
from boto3.s3.transfer import TransferConfig
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError


def make_client(endpoint, key=None, signature_version="s3v4"):
    """A path-style client; `key` is `{"id", "secret"}` (dummy keys without)."""
    key = key or {"id": "anything", "secret": "anything"}
    config = Config(
        s3={"addressing_style": "path"},
        signature_version=signature_version,
        connect_timeout=10,
        read_timeout=60,
        # No retries: every request must succeed (or be refused) on the first
        # attempt; a retry would hide a gateway fault.
        retries={"total_max_attempts": 1},
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key["id"],
        aws_secret_access_key=key["secret"],
        config=config,
    )


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Recorder:
    """Records the method, URL and Range header of every request boto3 sends."""

    def __init__(self, client):
        self.sent = []
        client.meta.events.register("before-send.s3", self.before_send)

    def before_send(self, request, **_):
        value = request.headers.get("Range")
        if isinstance(value, bytes):
            value = value.decode()
        self.sent.append({"method": request.method, "url": request.url, "range": value})

    def take(self):
        sent, self.sent = self.sent, []
        return sent


def error_of(call):
    """Runs `call`, which must fail with an S3 error; returns its code, status
    and `Connection` header, or the exception when no S3 error came back."""
    try:
        call()
    except ClientError as e:
        metadata = e.response["ResponseMetadata"]
        return {
            "code": e.response["Error"].get("Code"),
            "status": metadata["HTTPStatusCode"],
            "message": e.response["Error"].get("Message"),
            "connection": metadata.get("HTTPHeaders", {}).get("connection"),
        }
    except BotoCoreError as e:
        # A transport failure (e.g. a connection the server closed silently):
        # reported, for tests/clients.rs to fail with a clear message.
        return {"exception": f"{type(e).__name__}: {e}"}
    raise AssertionError("the call succeeded; it must fail")


def paginate(s3, bucket, **kwargs):
    pages = []
    keys = []
    sizes = []
    prefixes = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, **kwargs):
        contents = page.get("Contents", [])
        common = page.get("CommonPrefixes", [])
        pages.append(
            {
                "keys": len(contents),
                "prefixes": len(common),
                "key_count": page.get("KeyCount"),
                "truncated": page.get("IsTruncated"),
                "encoding_type": page.get("EncodingType"),
            }
        )
        keys.extend(o["Key"] for o in contents)
        sizes.extend(o["Size"] for o in contents)
        prefixes.extend(p["Prefix"] for p in common)
    return {"pages": pages, "keys": keys, "sizes": sizes, "prefixes": prefixes}


def reads(s3, workdir, plan):
    bucket = plan["bucket"]
    recorder = Recorder(s3)
    out = {"objects": {}, "heads": {}}

    for key in plan["objects"]:
        got = s3.get_object(Bucket=bucket, Key=key)
        body = got["Body"].read()
        out["objects"][key] = {
            "sha256": sha256(body),
            "md5": hashlib.md5(body).hexdigest(),
            "length": len(body),
            "content_length": got["ContentLength"],
            "etag": got["ETag"],
            "status": got["ResponseMetadata"]["HTTPStatusCode"],
        }
        head = s3.head_object(Bucket=bucket, Key=key)
        out["heads"][key] = {
            "content_length": head["ContentLength"],
            "etag": head["ETag"],
            "has_last_modified": "LastModified" in head,
            "status": head["ResponseMetadata"]["HTTPStatusCode"],
        }
    recorder.take()

    ranged = s3.get_object(Bucket=bucket, Key=plan["range_key"], Range="bytes=100-199")
    body = ranged["Body"].read()
    out["range"] = {
        "status": ranged["ResponseMetadata"]["HTTPStatusCode"],
        "length": len(body),
        "content_length": ranged["ContentLength"],
        "content_range": ranged.get("ContentRange"),
        "sha256": sha256(body),
    }
    suffix = s3.get_object(Bucket=bucket, Key=plan["range_key"], Range="bytes=-100")
    body = suffix["Body"].read()
    out["range_suffix"] = {
        "status": suffix["ResponseMetadata"]["HTTPStatusCode"],
        "length": len(body),
        "content_range": suffix.get("ContentRange"),
        "sha256": sha256(body),
    }
    out["range_beyond"] = error_of(
        lambda: s3.get_object(Bucket=bucket, Key=plan["range_key"], Range="bytes=1000000-")
    )
    overridden = s3.get_object(
        Bucket=bucket,
        Key=plan["range_key"],
        ResponseContentType="text/plain; charset=utf-8",
        ResponseContentDisposition='attachment; filename="x y.txt"',
        ResponseCacheControl="no-cache",
    )
    overridden["Body"].read()
    out["overrides"] = {
        "content_type": overridden.get("ContentType"),
        "content_disposition": overridden.get("ContentDisposition"),
        "cache_control": overridden.get("CacheControl"),
    }
    recorder.take()

    listing = plan["listing"]
    bucket = listing["bucket"]
    out["list_flat"] = paginate(
        s3,
        bucket,
        Prefix=listing["prefix"],
        PaginationConfig={"PageSize": listing["flat_page_size"]},
    )
    out["list_delimited"] = paginate(
        s3,
        bucket,
        Prefix=listing["prefix"],
        Delimiter="/",
        PaginationConfig={"PageSize": listing["delimited_page_size"]},
    )
    out["list_root"] = paginate(s3, bucket, Delimiter="/")
    out["list_all"] = paginate(s3, bucket)
    out["list_start_after"] = paginate(
        s3,
        bucket,
        Prefix=listing["prefix"],
        StartAfter=listing["start_after"],
        MaxKeys=listing["flat_page_size"],
    )
    v1_pages = 0
    v1_keys = []
    for page in s3.get_paginator("list_objects").paginate(
        Bucket=bucket, Prefix=listing["prefix"], PaginationConfig={"PageSize": 1000}
    ):
        v1_pages += 1
        v1_keys.extend(o["Key"] for o in page.get("Contents", []))
    out["list_v1"] = {"pages": v1_pages, "keys": v1_keys}
    recorder.take()

    bucket = plan["bucket"]
    downloads = {}
    for name, config in [
        ("default", TransferConfig()),
        (
            "small_chunks",
            TransferConfig(
                multipart_threshold=1024 * 1024,
                multipart_chunksize=1024 * 1024,
                max_concurrency=8,
            ),
        ),
    ]:
        path = os.path.join(workdir, f"download-{name}.bin")
        s3.download_file(bucket, plan["big_key"], path, Config=config)
        sent = recorder.take()
        downloads[name] = {
            "sha256": sha256_file(path),
            "size": os.path.getsize(path),
            "ranged_gets": sorted(
                r["range"] for r in sent if r["method"] == "GET" and r["range"]
            ),
            "requests": len(sent),
        }
    out["download_file"] = downloads

    fileobj = io.BytesIO()
    s3.download_fileobj(bucket, plan["fileobj_key"], fileobj)
    out["download_fileobj"] = {"sha256": sha256(fileobj.getvalue())}
    recorder.take()

    location = s3.get_bucket_location(Bucket=bucket)
    out["location"] = location.get("LocationConstraint")
    out["head_bucket"] = s3.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"]

    out["missing_get"] = error_of(lambda: s3.get_object(Bucket=bucket, Key=plan["missing_key"]))
    out["missing_head"] = error_of(lambda: s3.head_object(Bucket=bucket, Key=plan["missing_key"]))
    return out


def writes(s3, plan):
    bucket = plan["bucket"]
    key = plan["existing_key"]
    big = io.BytesIO(b"\0" * (3 * 1024 * 1024))
    return {
        "put_object": error_of(lambda: s3.put_object(Bucket=bucket, Key="new.txt", Body=b"hello")),
        # A file object: botocore sends `Expect: 100-continue`, and on a final
        # answer keeps the connection for the next request without sending
        # the body, unless the answer says `Connection: close`.
        "put_object_large": error_of(
            lambda: s3.put_object(Bucket=bucket, Key="new-large.bin", Body=big)
        ),
        "overwrite_object": error_of(lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"x")),
        "delete_object": error_of(lambda: s3.delete_object(Bucket=bucket, Key=key)),
        "delete_objects": error_of(
            lambda: s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}]})
        ),
        "create_multipart_upload": error_of(
            lambda: s3.create_multipart_upload(Bucket=bucket, Key="mpu.bin")
        ),
        "get_object_acl": error_of(lambda: s3.get_object_acl(Bucket=bucket, Key=key)),
        "get_bucket_acl": error_of(lambda: s3.get_bucket_acl(Bucket=bucket)),
        "list_buckets": error_of(lambda: s3.list_buckets()),
        "other_bucket_get": error_of(lambda: s3.get_object(Bucket=plan["other_bucket"], Key=key)),
        "other_bucket_list": error_of(lambda: s3.list_objects_v2(Bucket=plan["other_bucket"])),
    }


class Signatures:
    """Collects the SigV4 signature of every request a client sends, so that
    tests/clients.rs can look for them in the gateway's log."""

    def __init__(self):
        self.seen = []

    def watch(self, client):
        client.meta.events.register("before-send.s3", self.before_send)
        return client

    def before_send(self, request, **_):
        value = request.headers.get("Authorization")
        if isinstance(value, bytes):
            value = value.decode()
        if value and "Signature=" in value:
            self.seen.append(value.rsplit("Signature=", 1)[1].strip())


def keyed_reads(endpoint, plan):
    signatures = Signatures()
    keys = plan["keys"]
    s3 = signatures.watch(make_client(endpoint, keys["reader"]))
    bucket, key = plan["bucket"], plan["key"]
    got = s3.get_object(Bucket=bucket, Key=key)
    body = got["Body"].read()
    head = s3.head_object(Bucket=bucket, Key=key)
    ranged = s3.get_object(Bucket=bucket, Key=key, Range=plan["range"])
    ranged_body = ranged["Body"].read()
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=plan["prefix"], Delimiter="/")
    scoped = signatures.watch(make_client(endpoint, keys["scoped"]))
    scoped_got = scoped.get_object(Bucket=plan["scoped_bucket"], Key=plan["scoped_key"])
    scoped_body = scoped_got["Body"].read()
    scoped_list = scoped.list_objects_v2(Bucket=plan["scoped_bucket"], Prefix=plan["scoped_prefix"])
    return {
        "get": {
            "status": got["ResponseMetadata"]["HTTPStatusCode"],
            "sha256": sha256(body),
            "md5": hashlib.md5(body).hexdigest(),
            "length": len(body),
        },
        "head": {
            "status": head["ResponseMetadata"]["HTTPStatusCode"],
            "content_length": head["ContentLength"],
            "etag": head["ETag"],
        },
        "range": {
            "status": ranged["ResponseMetadata"]["HTTPStatusCode"],
            "content_range": ranged.get("ContentRange"),
            "sha256": sha256(ranged_body),
            "length": len(ranged_body),
        },
        "list": {
            "keys": [o["Key"] for o in listing.get("Contents", [])],
            "prefixes": [p["Prefix"] for p in listing.get("CommonPrefixes", [])],
        },
        "scoped_get": {"sha256": sha256(scoped_body)},
        "scoped_list": [o["Key"] for o in scoped_list.get("Contents", [])],
        "buckets": {
            name: [b["Name"] for b in signatures.watch(make_client(endpoint, k)).list_buckets()["Buckets"]]
            for name, k in keys.items()
        },
        "signatures": signatures.seen,
    }


def keyed_refusals(endpoint, plan):
    signatures = Signatures()
    keys = plan["keys"]
    bucket, key = plan["bucket"], plan["key"]
    wrong = signatures.watch(
        make_client(endpoint, {"id": keys["reader"]["id"], "secret": plan["wrong_secret"]})
    )
    unknown = signatures.watch(make_client(endpoint, plan["unknown_key"]))
    reader = signatures.watch(make_client(endpoint, keys["reader"]))
    scoped = signatures.watch(make_client(endpoint, keys["scoped"]))
    unsigned = make_client(endpoint, signature_version=UNSIGNED)
    out = {
        "wrong_secret_get": error_of(lambda: wrong.get_object(Bucket=bucket, Key=key)),
        "wrong_secret_list": error_of(lambda: wrong.list_objects_v2(Bucket=bucket)),
        "wrong_secret_list_buckets": error_of(lambda: wrong.list_buckets()),
        "unknown_key_get": error_of(lambda: unknown.get_object(Bucket=bucket, Key=key)),
        "unknown_key_list_buckets": error_of(lambda: unknown.list_buckets()),
        "other_bucket_get": error_of(
            lambda: reader.get_object(Bucket=plan["other_bucket"], Key=key)
        ),
        "other_bucket_list": error_of(lambda: reader.list_objects_v2(Bucket=plan["other_bucket"])),
        "other_bucket_head": error_of(
            lambda: reader.head_bucket(Bucket=plan["other_bucket"])
        ),
        "outside_prefix_get": error_of(
            lambda: scoped.get_object(Bucket=plan["scoped_bucket"], Key=plan["outside_key"])
        ),
        "outside_prefix_list": error_of(
            lambda: scoped.list_objects_v2(Bucket=plan["scoped_bucket"])
        ),
        "scoped_other_bucket_get": error_of(lambda: scoped.get_object(Bucket=bucket, Key=key)),
        "unsigned_get": error_of(lambda: unsigned.get_object(Bucket=bucket, Key=key)),
        "unsigned_list": error_of(lambda: unsigned.list_objects_v2(Bucket=bucket)),
        "unsigned_list_buckets": error_of(lambda: unsigned.list_buckets()),
    }
    # A clock 20 minutes behind: botocore signs with the time it reads here.
    real_now = botocore.auth.get_current_datetime
    behind = datetime.timedelta(minutes=20)
    with unittest.mock.patch.object(
        botocore.auth, "get_current_datetime", lambda *a, **k: real_now(*a, **k) - behind
    ):
        skewed = signatures.watch(make_client(endpoint, keys["reader"]))
        out["skewed_get"] = error_of(lambda: skewed.get_object(Bucket=bucket, Key=key))
        out["skewed_list"] = error_of(lambda: skewed.list_objects_v2(Bucket=bucket))
    out["signatures"] = signatures.seen
    return out


def keyed_presign(endpoint, plan):
    s3 = make_client(endpoint, plan["keys"]["reader"])
    return {
        name: s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": plan["bucket"], "Key": plan["key"]},
            ExpiresIn=expires,
        )
        for name, expires in plan["expires"].items()
    }


def main():
    mode, endpoint, workdir = sys.argv[1:4]
    with open(os.path.join(workdir, "plan.json"), encoding="utf-8") as f:
        plan = json.load(f)
    if mode == "reads":
        out = reads(make_client(endpoint), workdir, plan)
    elif mode == "writes":
        out = writes(make_client(endpoint), plan)
    elif mode == "keyed-reads":
        out = keyed_reads(endpoint, plan)
    elif mode == "keyed-refusals":
        out = keyed_refusals(endpoint, plan)
    elif mode == "keyed-presign":
        out = keyed_presign(endpoint, plan)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    json.dump(out, sys.stdout, ensure_ascii=True)


if __name__ == "__main__":
    main()
