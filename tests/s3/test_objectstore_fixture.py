"""The fixture itself: a real S3 endpoint on loopback that boto3 can write to and read back."""

from __future__ import annotations

from tests.objectstore import MotoServer


def test_moto_server_stores_objects_over_http_when_started(s3: MotoServer, bucket: str) -> None:
    s3.client().put_object(Bucket=bucket, Key="m/1/model.onnx", Body=b"abc")
    listed = s3.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["m/1/model.onnx"]
    assert s3.url(bucket, "repo").startswith(f"s3://127.0.0.1:{s3.port}/{bucket}/repo")
