"""Sets up moto's IAM for the STS tests, then switches moto's auth on.

Creates the gateway's IAM user (with keys and leave to call sts:AssumeRole)
and one role per requested external ID whose trust policy names that user and
demands the external ID. Prints the keys and role ARNs as JSON.

The gateway's user may also read S3 directly, for tests that use moto's S3
(which verifies header signatures and answers conditional requests); its
objects carry a SHA-256 checksum.
Arguments of the form s3:BUCKET/KEY=TEXT create that object first.

usage: moto_setup.py MOTO_URL [ROLE_NAME=EXTERNAL_ID | s3:BUCKET/KEY=TEXT ...]
"""
import json
import sys
import urllib.request

import boto3

ACCOUNT = "123456789012"


def main():
    url = sys.argv[1]
    roles = [a.split("=", 1) for a in sys.argv[2:] if not a.startswith("s3:")]
    objects = [a[3:].split("=", 1) for a in sys.argv[2:] if a.startswith("s3:")]
    session = boto3.session.Session(
        aws_access_key_id="setup", aws_secret_access_key="setup", region_name="us-east-1"
    )
    iam = session.client("iam", endpoint_url=url)
    iam.create_user(UserName="s3gate")
    iam.put_user_policy(
        UserName="s3gate",
        PolicyName="assume-customer-roles",
        PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"},
                # moto authorises HeadBucket as its own action, s3:HeadBucket.
                {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation", "s3:HeadBucket"], "Resource": "*"},
            ],
        }),
    )
    key = iam.create_access_key(UserName="s3gate")["AccessKey"]
    s3 = session.client("s3", endpoint_url=url)
    for path, text in objects:
        bucket, key_name = path.split("/", 1)
        if bucket not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
            s3.create_bucket(Bucket=bucket)
        s3.put_object(
            Bucket=bucket,
            Key=key_name,
            Body=text.encode(),
            Metadata={"origin": "s3gate-test"},
            ServerSideEncryption="AES256",
            ChecksumAlgorithm="SHA256",
        )
    # An identity that exists but that no trust policy names.
    iam.create_user(UserName="stranger")
    iam.put_user_policy(
        UserName="stranger",
        PolicyName="assume-anything",
        PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
        }),
    )
    stranger = iam.create_access_key(UserName="stranger")["AccessKey"]
    arns = {}
    for name, external_id in roles:
        trust = {
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/s3gate"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            }],
        }
        role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(
            RoleName=name,
            PolicyName="read",
            PolicyDocument=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}],
            }),
        )
        arns[name] = role["Role"]["Arn"]
    request = urllib.request.Request(
        url + "/moto-api/reset-auth", data=b"0", headers={"Content-Type": "text/plain"}, method="POST"
    )
    urllib.request.urlopen(request).read()
    print(json.dumps({
        "access_key_id": key["AccessKeyId"],
        "secret_access_key": key["SecretAccessKey"],
        "stranger_access_key_id": stranger["AccessKeyId"],
        "stranger_secret_access_key": stranger["SecretAccessKey"],
        "roles": arns,
    }))


if __name__ == "__main__":
    main()
