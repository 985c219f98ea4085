"""The S3 blob store against moto's server mode: multipart uploads, streamed reads, listing, deletion,
presigned links. (The whole training round trip through S3 is in test_remote_executors.py.)"""

from __future__ import annotations

from pathlib import Path

from tuneyard.store.s3 import S3BlobStore


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
