"""Fixtures of the scaling tests (defined in ``cluster.py`` beside this file)."""

from tests.scaling.cluster import cluster, pg_database, ray_head, s3, s3_server, sshd  # noqa: F401
