"""Helpers of benches/soak.sh (boto3 from the test venv).

  soak_client.py objects MOTO_URL
      creates the soak's buckets and objects in moto's S3 (before moto's auth
      is switched on): media/photo-000..099 (8 KiB), vault/hot.bin (256 KiB)
      and vault/cold-000..299 (128 KiB, more than the soak's cache holds).
  soak_client.py lua PORT TOKEN ACCESS_KEY SECRET DELAY_MS ROUND OUT
      writes a wrk script that cycles through a fixed mix of requests to the
      gateway on 127.0.0.1:PORT, each connection waiting DELAY_MS between its
      requests. S3 front requests are SigV4-signed now (valid 15 minutes), so
      the script is written anew for each minute; ROUND shifts the rotation.
  soak_client.py check PORT TOKEN ACCESS_KEY SECRET
      sends the 100 requests of one cycle of the mix; fails unless each has
      its expected status (200, 206 or 307).
  soak_client.py sessions MOTO_URL ROLE_ARN...
      prints "ARN COUNT" for each role: the sessions moto has issued for it.

The mix, per 100 requests: 20 GET /v1/presign, 5 POST /v1/presign of 100
locators, 15 /v1/object redirects (307), 15 proxied Range reads of one hot
object (206, cache hits), 10 proxied Range reads of cold objects (206, cache
misses), 10 proxied whole reads of the hot object (200), 5 /v1/list, 10 S3
front GETs signed in the Authorization header and 10 presigned S3 front GETs.
"""

import http.client
import json
import sys
import urllib.parse
import urllib.request

import boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

PHOTOS = 100
COLD = 300


def photo(i):
    return f"photo-{i % PHOTOS:03d}.jpg"


def cold(i):
    return f"cold-{i % COLD:03d}.bin"


def objects(url):
    session = boto3.session.Session(
        aws_access_key_id="setup", aws_secret_access_key="setup", region_name="us-east-1"
    )
    s3 = session.client("s3", endpoint_url=url)
    for bucket in ("media", "vault"):
        s3.create_bucket(Bucket=bucket)
    for i in range(PHOTOS):
        s3.put_object(Bucket="media", Key=photo(i), Body=bytes([i]) * 8192)
    s3.put_object(Bucket="vault", Key="hot.bin", Body=b"h" * 262144)
    for i in range(COLD):
        s3.put_object(Bucket="vault", Key=cold(i), Body=bytes([i % 256]) * 131072)


def locator(bucket, key):
    return urllib.parse.quote(f"s3://{bucket}/{key}", safe="")


def raw(request):
    """The bytes of (method, path, headers, body, expected status) on the wire."""
    method, path, headers, body, _ = request
    head = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    if body:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Mix:
    """Builds the raw requests of one round."""

    def __init__(self, port, token, access_key, secret):
        self.host = f"127.0.0.1:{port}"
        self.bearer = {"Host": self.host, "Authorization": f"Bearer {token}"}
        self.credentials = Credentials(access_key, secret)
        self.s3 = boto3.client(
            "s3",
            endpoint_url=f"http://{self.host}",
            region_name="us-east-1",
            aws_access_key_id=access_key,
            aws_secret_access_key=secret,
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
        )

    def api(self, path, status, extra=None, method="GET", body=b""):
        return (method, path, {**self.bearer, **(extra or {})}, body, status)

    def signed(self, path):
        request = AWSRequest(method="GET", url=f"http://{self.host}{path}")
        S3SigV4Auth(self.credentials, "s3", "us-east-1").add_auth(request)
        headers = {"Host": self.host}
        headers.update({k: v for k, v in request.headers.items() if k.lower() != "host"})
        return ("GET", path, headers, b"", 200)

    def presigned(self, bucket, key):
        url = self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600
        )
        parts = urllib.parse.urlsplit(url)
        return ("GET", f"{parts.path}?{parts.query}", {"Host": self.host}, b"", 200)

    def cycle(self, n):
        """The 100 requests of cycle n."""
        out = []
        for i in range(20):
            out.append(self.api(f"/v1/presign?locator={locator('media', photo(n * 20 + i))}", 200))
        for i in range(5):
            body = json.dumps(
                {"locators": [f"s3://media/{photo(n + i + j)}" for j in range(100)]}
            ).encode()
            out.append(
                self.api("/v1/presign", 200, {"Content-Type": "application/json"}, "POST", body)
            )
        for i in range(15):
            out.append(self.api(f"/v1/object?locator={locator('media', photo(n * 15 + i))}", 307))
        for i in range(15):
            start = (n * 15 + i) % 200 * 1024
            rng = {"Range": f"bytes={start}-{start + 4095}"}
            out.append(self.api(f"/v1/object?locator={locator('vault', 'hot.bin')}", 206, rng))
        for i in range(10):
            rng = {"Range": "bytes=1024-9215"}
            out.append(self.api(f"/v1/object?locator={locator('vault', cold(n * 10 + i))}", 206, rng))
        for _ in range(10):
            out.append(self.api(f"/v1/object?locator={locator('vault', 'hot.bin')}", 200))
        for i in range(5):
            prefix = urllib.parse.quote(f"s3://media/photo-0{i}", safe="")
            out.append(self.api(f"/v1/list?locator={prefix}&limit=20", 200))
        for i in range(10):
            out.append(self.signed(f"/media/{photo(n * 10 + i)}"))
        for i in range(10):
            out.append(self.presigned("media", photo(n * 10 + i + 50)))
        return out


def lua_string(data):
    return '"' + "".join(
        chr(b) if 32 <= b < 127 and chr(b) not in '"\\' else f"\\{b:03d}" for b in data
    ) + '"'


def lua(port, token, access_key, secret, delay_ms, round_no, out):
    mix = Mix(port, token, access_key, secret)
    requests = []
    # 30 cycles rotate through all cold objects; ROUND starts each minute elsewhere.
    for n in range(30):
        requests.extend(mix.cycle(round_no * 30 + n))
    with open(out, "w") as f:
        f.write("local requests = {\n")
        for r in requests:
            f.write(f"  {lua_string(raw(r))},\n")
        f.write("}\nlocal i = 0\n")
        f.write("request = function()\n  i = i % #requests + 1\n  return requests[i]\nend\n")
        f.write(f"delay = function()\n  return {int(delay_ms)}\nend\n")


def check(port, token, access_key, secret):
    """Sends one cycle of the mix; each answer must have its expected status."""
    bad = 0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for method, path, headers, body, status in Mix(port, token, access_key, secret).cycle(0):
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != status:
            bad += 1
            print(f"{method} {path[:80]}: {response.status}, wanted {status}", file=sys.stderr)
    if bad:
        raise SystemExit(f"check: {bad} of 100 requests answered another status")
    print("checked 100")


def sessions(url, arns):
    with urllib.request.urlopen(f"{url}/moto-api/data.json") as response:
        data = json.load(response)
    issued = data.get("sts", {}).get("AssumedRole", [])
    for arn in arns:
        print(arn, sum(1 for s in issued if s.get("role_arn") == arn))


def main():
    mode = sys.argv[1]
    if mode == "objects":
        objects(sys.argv[2])
    elif mode == "lua":
        port, token, key, secret, delay, round_no, out = sys.argv[2:9]
        lua(int(port), token, key, secret, int(delay), int(round_no), out)
    elif mode == "check":
        port, token, key, secret = sys.argv[2:6]
        check(int(port), token, key, secret)
    elif mode == "sessions":
        sessions(sys.argv[2], sys.argv[3:])
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
