"""What a team would write instead of s3gate: FastAPI + boto3 presigning.

The reference of benches/load.sh's "FastAPI + boto3" row. It answers
`GET /v1/presign?locator=s3://BUCKET/KEY` with s3gate's JSON shape
(`{"url": ..., "expires_at": ..., "integration": ...}`), signed by boto3's
`generate_presigned_url('get_object', ...)` (SigV4, path-style addressing,
static keys) for 900 s, s3gate's default lifetime. A caller presents
`Authorization: Bearer TOKEN`; the SHA-256 of the token is compared with the
configured digest, as s3gate does. One boto3 client per worker process, made
at startup. Run by load.sh as

    uvicorn --app-dir benches fastapi_presign:app --workers 2 ...

Configured by environment variables: PRESIGN_STORE_URL (the S3 endpoint),
PRESIGN_ACCESS_KEY_ID, PRESIGN_SECRET_ACCESS_KEY, PRESIGN_REGION (default
us-east-1), PRESIGN_BUCKETS (space-separated; each bucket is its own
integration, named after it) and PRESIGN_TOKEN_SHA256 (hex).
"""

import hashlib
import hmac
import os
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from fastapi import Depends, FastAPI, HTTPException, Query, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

TTL_S = 900
BUCKETS = frozenset(os.environ["PRESIGN_BUCKETS"].split())
TOKEN_SHA256 = bytes.fromhex(os.environ["PRESIGN_TOKEN_SHA256"])

s3 = None  # the worker's boto3 client, made by lifespan()


@asynccontextmanager
async def lifespan(_app):
    global s3
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["PRESIGN_STORE_URL"],
        region_name=os.environ.get("PRESIGN_REGION", "us-east-1"),
        aws_access_key_id=os.environ["PRESIGN_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["PRESIGN_SECRET_ACCESS_KEY"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    yield


app = FastAPI(lifespan=lifespan)
bearer = HTTPBearer()  # no or malformed Authorization: 401


def caller(credentials: HTTPAuthorizationCredentials = Depends(bearer)) -> None:
    digest = hashlib.sha256(credentials.credentials.encode()).digest()
    if not hmac.compare_digest(digest, TOKEN_SHA256):
        raise HTTPException(401, "the bearer token is not valid", {"WWW-Authenticate": "Bearer"})


class Presigned(BaseModel):
    url: str
    expires_at: str
    integration: str


# async def: signing is CPU work with no I/O (static keys), so it runs on the
# event loop rather than in the thread pool a plain def would hop to.
@app.get("/v1/presign", response_model=Presigned, dependencies=[Depends(caller)])
async def presign(response: Response, locator: str = Query()) -> Presigned:
    parts = urlsplit(locator)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if parts.scheme != "s3" or not bucket or not key:
        raise HTTPException(400, "the locator is not s3://BUCKET/KEY")
    if bucket not in BUCKETS:
        raise HTTPException(403, f"bucket {bucket!r} is not permitted")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=TTL_S
    )
    response.headers["Cache-Control"] = "no-store"
    return Presigned(
        url=url,
        expires_at=(now + timedelta(seconds=TTL_S)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        integration=bucket,
    )
