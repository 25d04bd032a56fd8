"""The S3 tests' server and buckets come from the root conftest (``s3_server``, ``s3``, ``bucket``), shared
with the deploy tests."""
