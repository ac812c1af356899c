"""The chart's batch-scoring CronJob, run as a kubelet would run its pod: the copier fetches the
input from an S3 API (moto, on 127.0.0.1), the model image scores it on a read-only root as the
chart's user, and the copier uploads the scores. rclone from Debian stands in for the copier
image; the model image is the one `make image` built. What a cluster adds (the schedule, Job
retries, pulling images) is Kubernetes' own and is not exercised here."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from helpers.charts import render_bento
from helpers.images import skopeo_inspect
from helpers.pods import Image, emptydirs, run_pod
from helpers.project import run
from helpers.s3 import BUCKET, S3Server

COPIER = "rclone/rclone:1.68.2"


def batch_values(project: str, record: dict, endpoint: str, name: str) -> dict:
    return {
        "project": project,
        "environment": "production",
        "image": {"repository": record["repository"], "digest": record["digest"]},
        "batch": {
            "enabled": True,
            "input": f"s3://{BUCKET}/incoming/{name}",
            "output": f"s3://{BUCKET}/scores/{name}",
            "copier": {
                "image": COPIER,
                "env": {
                    "RCLONE_S3_PROVIDER": "Other",
                    "RCLONE_S3_ENDPOINT": endpoint,
                    "RCLONE_S3_ENV_AUTH": "true",
                },
                "envFrom": [{"secretRef": {"name": "batch-s3"}}],
            },
        },
    }


@pytest.mark.slow
@pytest.mark.xdist_group("image")
def test_the_cronjob_scores_in_the_image_like_make_score_and_uploads_only_whole_files(
    built_image, image_rootfs, image_env, tmp_path
):
    project, _, record, _ = built_image
    config = skopeo_inspect(record["reference"], "--config")["config"]
    images = {record["reference"]: Image.of(image_rootfs, config), COPIER: None}
    (raw,) = (project / "data" / "raw").glob("*.csv")
    lines = raw.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    # A text value in a numeric column on the 7th data row.
    cells = rows[6].split(",")
    cells[0] = "twelve"
    bad = "\n".join([header, *rows[:6], ",".join(cells), *rows[7:]]) + "\n"

    # What `make score` in the checkout writes with the model the image was built from.
    expected = tmp_path / "expected.csv"
    run(["make", "score", f"INPUT={raw}", f"OUTPUT={expected}"], project, image_env[1])

    with S3Server(tmp_path / "s3") as s3:
        client = s3.client()
        client.put_object(Bucket=BUCKET, Key="incoming/today.csv", Body=raw.read_bytes())
        client.put_object(Bucket=BUCKET, Key="incoming/bad.csv", Body=bad.encode())
        keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        secrets = {"batch-s3": {key: s3.credentials[key] for key in keys}}

        def run_job(name: str) -> tuple[list, dict[str, Path]]:
            values = batch_values(project.name, record, s3.endpoint, name)
            (cronjob,) = [o for o in render_bento(values) if o["kind"] == "CronJob"]
            pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            volumes = emptydirs(pod, tmp_path / name)
            return run_pod(pod, volumes, images, secrets), volumes

        ran, _ = run_job("today.csv")
        assert [(c.name, c.returncode) for c in ran] == [
            ("fetch", 0),
            ("score", 0),
            ("store", 0),
        ], "\n".join(f"--- {c.name}\n{c.log[-3000:]}" for c in ran)
        assert f"scored {len(rows)} rows" in ran[1].log
        scored = client.get_object(Bucket=BUCKET, Key="scores/today.csv")["Body"].read().decode()
        # The same rows, values, model version and run id (the image writes with pandas, make
        # score with pyarrow: the bytes may differ, as in 1.0 and 1).
        pd.testing.assert_frame_equal(
            pd.read_csv(io.StringIO(scored)), pd.read_csv(expected), check_exact=True
        )

        ran, volumes = run_job("bad.csv")
        assert [(c.name, c.returncode) for c in ran] == [("fetch", 0), ("score", 1)], "\n".join(
            f"--- {c.name}\n{c.log[-3000:]}" for c in ran
        )
        assert "error: " in ran[1].log and "rows 7 (first: row 7" in ran[1].log, ran[1].log
        assert "Traceback" not in ran[1].log
        assert s3.keys("scores/") == ["scores/today.csv"]  # nothing uploaded for the failed run
        assert [p.name for p in volumes["work"].iterdir()] == ["in"]  # and no partial output
