"""Datasets, reward files and checkpoints in an S3 bucket (moto's server mode), end to end:
upload through the API, train on a worker, download the model through presigned S3 links."""

from __future__ import annotations

from pathlib import Path

from tests.scaling.cluster import checkpoint_shapes, create_job, download_checkpoint, events, upload, wait_done
from tuneyard.store.s3 import S3BlobStore


def test_training_round_trip_through_s3(cluster, s3, tmp_path):
    cluster.env.update(s3.env)
    srv = cluster.serve()
    cluster.worker()
    with srv.client() as c:
        ds = upload(c)
        ds_keys = s3.keys("tuneyard/orgs/")
        assert len(ds_keys) == 1 and ds_keys[0].endswith(f"/datasets/{ds}.jsonl"), ds_keys
        # The preview is read back from the bucket, line by line.
        preview = c.get(f"/v1/datasets/{ds}").json()["preview"]
        assert preview[0]["messages"][0]["content"] == "What is 0 plus 0?"

        job_id = create_job(c, ds)
        job = wait_done(c, job_id)
        assert job["status"] == "completed", job
        ckpt_keys = s3.keys("tuneyard/orgs/")
        assert any(k.endswith(f"/jobs/{job_id}/checkpoints/final/adapter_model.safetensors") for k in ckpt_keys)

        # Download links are presigned S3 URLs: the bytes come from the bucket, no tuneyard auth.
        manifest = c.get(f"/v1/training_jobs/{job_id}/model").json()
        for f in manifest["files"]:
            assert f["url"].startswith(f"{s3.endpoint}/{s3.bucket}/tuneyard/orgs/"), f["url"]
            assert "X-Amz-Signature=" in f["url"]
        assert job["download_url"].startswith(s3.endpoint) and "adapter_model.safetensors" in job["download_url"]
        files = download_checkpoint(c, job_id, tmp_path / "model")
        assert {"adapter_model.safetensors", "adapter_config.json", "tuneyard.json"} <= set(files)
        shapes = checkpoint_shapes(tmp_path / "model")
        assert shapes and all(4 in shape for shape in shapes.values())  # lora_r=4
        # (moto does not check signatures, so a tampered link is not tested here; S3 and MinIO refuse it.)
        assert all("X-Amz-Expires=3600" in f["url"] for f in manifest["files"])
        assert "checkpoint.saved" in [e["type"] for e in events(c, job_id)]

        # Nothing went to a local blob folder on either process.
        assert not list(cluster.root.glob("*/blobs/orgs"))
        assert not (cluster.root / "shared-blobs").exists()


def test_large_files_are_uploaded_in_parts_and_streamed_back(s3, tmp_path):
    from boto3.s3.transfer import TransferConfig

    store = S3BlobStore(s3.bucket, "p", scratch_root=tmp_path / "tmp", endpoint_url=s3.endpoint)
    store.transfer = TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
    big = tmp_path / "big.bin"
    payload = bytes(range(256)) * (11 * 2**20 // 256 + 7)  # a bit over 11 MiB: three parts
    big.write_bytes(payload)
    store.put_file("a/big.bin", big)
    head = s3.client().head_object(Bucket=s3.bucket, Key="p/a/big.bin")
    assert head["ETag"].strip('"').endswith("-3")  # S3's mark of a three-part upload
    assert store.size("a/big.bin") == len(payload) and store.exists("a/big.bin")
    assert b"".join(store.iter_bytes("a/big.bin", chunk_size=2**20)) == payload
    with store.open("a/big.bin") as f:
        assert f.read(10) == payload[:10]
    store.put_file("a/b/lines.txt", _write(tmp_path / "l.txt", b"one\ntwo\nthree\n"))
    with store.open("a/b/lines.txt") as f:
        assert [line for line in f] == [b"one\n", b"two\n", b"three\n"]
    assert store.list("a") == ["a/b/lines.txt", "a/big.bin"]
    store.delete_prefix("a/b")
    assert store.list("a") == ["a/big.bin"] and not store.exists("a/b/lines.txt")
    store.delete("a/big.bin")
    assert s3.keys("p/") == []


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_presigned_links_use_the_public_endpoint(s3, tmp_path):
    store = S3BlobStore(s3.bucket, "", scratch_root=tmp_path / "tmp", endpoint_url=s3.endpoint,
                        public_endpoint_url="https://files.example.test")
    url = store.presigned_url("x/model.safetensors", 60, "model.safetensors")
    assert url.startswith(f"https://files.example.test/{s3.bucket}/x/model.safetensors?")
    assert store.url("x/model.safetensors") == f"s3://{s3.bucket}/x/model.safetensors"
