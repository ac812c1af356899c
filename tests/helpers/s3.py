"""An S3 API on 127.0.0.1: moto's server mode (PyPI `moto[server]`, in the dev venv), what DVC's
and s3fs's own tests use. It keeps objects in memory, so a restart (after a test stopped it)
comes back empty but for the bucket, which `after_start` creates again."""

from __future__ import annotations

import secrets
import sys
import urllib.error
import urllib.request
from pathlib import Path

from helpers.servers import Server

BUCKET = "models"


class S3Server(Server):
    name = "s3"

    def __init__(self, workdir: Path, port: int | None = None):
        super().__init__(workdir, port)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        # Any keys do for moto; distinctive ones let tests look for leaks.
        self.credentials = {
            "AWS_ACCESS_KEY_ID": "AKIA" + secrets.token_hex(8).upper(),
            "AWS_SECRET_ACCESS_KEY": "s3-secret-" + secrets.token_hex(12),
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def command(self) -> list[str]:
        moto = Path(sys.executable).with_name("moto_server")
        return [str(moto), "-H", "127.0.0.1", "-p", str(self.port)]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2) as answer:
                return answer.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.credentials["AWS_SECRET_ACCESS_KEY"],
            region_name=self.credentials["AWS_DEFAULT_REGION"],
        )

    def after_start(self) -> None:
        self.client().create_bucket(Bucket=BUCKET)

    def keys(self, prefix: str = "") -> list[str]:
        listed = self.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return [item["Key"] for item in listed.get("Contents", [])]
