"""Datasets from connected sources: Hugging Face, S3, Postgres and HTTPS URLs.

``connect`` reads the source once and snapshots its rows into blob storage (through
``datasets.create_from_rows``), so training never needs the source or its credentials again.
``validate`` reads and checks the same rows without storing anything.

What is stored about a source never holds a secret: S3 credentials are used for the read and
dropped, a Postgres connection string is reduced to host/port/database, a URL loses its user
info and query string. ``source_config["fingerprint"]`` (a hash of the source, secrets left
out) makes ``connect`` idempotent: the same name and source return the existing dataset.

Every failure of the source (unreachable, denied, missing, malformed) is a ``SourceError``
(400, code ``source_unreachable``), never a 500. Sources are read only from the request's
thread; nothing here holds a database transaction open while a source is read.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import math
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tuneyard.errors import InvalidRequest, PayloadTooLarge, TuneyardError
from tuneyard.services import datasets
from tuneyard.services.dataset_formats import DatasetError, Summary, check_rows, parse_jsonl_lines
from tuneyard.settings import Settings
from tuneyard.store.blobs import BlobStore
from tuneyard.store.db import Database
from tuneyard.store.models import Dataset

SOURCE_TYPES = ("hf", "s3", "postgres", "https")
TYPE_ALIASES = {"huggingface": "hf", "http": "https", "postgresql": "postgres"}
STATEMENT_TIMEOUT_S = 30
CONNECT_TIMEOUT_S = 5
HUB_PROBE_TIMEOUT_S = 3
CHUNK = 1 << 20
S3_CREDENTIAL_FIELDS = {
    **{k: k for k in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "endpoint_url", "region")},
    "access_key_id": "aws_access_key_id", "secret_access_key": "aws_secret_access_key",
    "session_token": "aws_session_token", "region_name": "region", "aws_region": "region",
    "endpoint": "endpoint_url", "aws_endpoint_url": "endpoint_url",
}


class SourceError(InvalidRequest):
    """The source could not be read: unreachable, denied, missing, or not a dataset."""

    code = "source_unreachable"


@dataclass
class Source:
    type: str
    name: str
    uri: str | None                                   # stored as source_uri (no secrets)
    config: dict[str, Any]                            # stored as source_config (no secrets)
    secrets: dict[str, Any] = field(default_factory=dict, repr=False)  # used for the read only

    @property
    def fingerprint(self) -> str:
        ident = {"type": self.type, "uri": self.secrets.get("identity_uri", self.uri), **self.config}
        return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()

    def stored_config(self) -> dict[str, Any]:
        return {**self.config, "fingerprint": self.fingerprint}


# --- the request ---------------------------------------------------------------------------------

def parse_source(body: dict[str, Any], settings: Settings) -> Source:
    """Turn a connect/validate body into a Source; InvalidRequest (400) when the request is malformed."""
    body = {k: v for k, v in body.items() if v not in (None, "", {})}
    if body.get("volume") or body.get("volume_path"):
        raise InvalidRequest("volumes are not supported; use source_type hf, s3, postgres or https",
                             param="volume", code="unsupported_source")
    raw_type = str(body.get("source_type") or "hf").strip().lower()
    kind = TYPE_ALIASES.get(raw_type, raw_type)
    if kind == "volume":
        raise InvalidRequest("volumes are not supported; use source_type hf, s3, postgres or https",
                             param="source_type", code="unsupported_source")
    if kind not in SOURCE_TYPES:
        raise InvalidRequest(f"Unknown source_type {raw_type!r}; expected one of {', '.join(SOURCE_TYPES)}",
                             param="source_type", code="unsupported_source")
    source = {"hf": _parse_hf, "s3": _parse_s3, "postgres": _parse_postgres, "https": _parse_https}[kind](
        body, settings)
    name = str(body.get("name") or "").strip()
    if len(name) > 200:
        raise InvalidRequest("name is longer than 200 characters", param="name")
    source.name = name or source.name[:200]   # datasets.name is VARCHAR(200)
    return source


def _required(body: dict, key: str, what: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{key} is required for {what}", param=key)
    return value.strip()


def _parse_hf(body: dict, settings: Settings) -> Source:
    if "huggingface_dataset" not in body and "hf_dataset" in body:
        body["huggingface_dataset"] = body["hf_dataset"]
    repo = _required(body, "huggingface_dataset", "source_type 'hf'")
    cfg = body.get("huggingface_config", body.get("hf_config")) or {}
    if isinstance(cfg, str):            # a bare string is the config name
        cfg = {"config_name": cfg}
    if not isinstance(cfg, dict):
        raise InvalidRequest("huggingface_config must be an object", param="huggingface_config")
    split = cfg.get("split") or "train"
    config_name = cfg.get("config_name") or cfg.get("name") or None
    mapping = cfg.get("column_mapping") or {}
    if not isinstance(split, str) or (config_name is not None and not isinstance(config_name, str)):
        raise InvalidRequest("split and config_name must be strings", param="huggingface_config")
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) and v
                                                for k, v in mapping.items()):
        raise InvalidRequest("column_mapping must map source column names to new names",
                             param="huggingface_config.column_mapping")
    if len(set(mapping.values())) != len(mapping):
        raise InvalidRequest("column_mapping maps two columns to the same name",
                             param="huggingface_config.column_mapping")
    local = _local_folder(repo, settings)
    if local is None and not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", repo):
        raise InvalidRequest(f"{repo!r} is neither a Hugging Face dataset id (owner/name) nor an absolute "
                             "path to a local dataset folder", param="huggingface_dataset")
    config = {"huggingface_dataset": repo,
              "huggingface_config": {"split": split, **({"config_name": config_name} if config_name else {}),
                                     **({"column_mapping": mapping} if mapping else {})}}
    return Source("hf", repo.rstrip("/").rsplit("/", 1)[-1], repo, config, {"local_path": local} if local else {})


def _local_folder(repo: str, settings: Settings) -> Path | None:
    """The local dataset folder ``repo`` names (absolute, ``./``, ``~`` or ``file://``), else None."""
    text = repo.removeprefix("file://")
    if not (text.startswith(("/", "./", "../", "~")) or text in (".", "..")):
        return None
    path = Path(text).expanduser().resolve()
    data_dir = settings.data_dir.expanduser().resolve()
    if path == data_dir or data_dir in path.parents:
        raise InvalidRequest("huggingface_dataset may not point into tuneyard's own data directory",
                             param="huggingface_dataset")
    return path


def _parse_s3(body: dict, settings: Settings) -> Source:
    uri = _required(body, "source_uri", "source_type 's3'")
    parts = urlsplit(uri)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if parts.scheme != "s3" or not bucket or not key or key.endswith("/"):
        raise InvalidRequest("source_uri must look like s3://bucket/path/to/data.jsonl", param="source_uri")
    given = body.get("credentials") or {}
    if not isinstance(given, dict):
        raise InvalidRequest("credentials must be an object", param="credentials")
    creds: dict[str, Any] = {}
    for field_name, value in given.items():
        canonical = S3_CREDENTIAL_FIELDS.get(field_name)
        if canonical is None:
            raise InvalidRequest(f"Unknown credentials field {field_name!r}; expected "
                                 f"{', '.join(sorted(set(S3_CREDENTIAL_FIELDS.values())))}", param="credentials")
        if value not in (None, ""):
            if not isinstance(value, str):
                raise InvalidRequest(f"credentials.{field_name} must be a string", param="credentials")
            creds[canonical] = value.strip()
    if bool(creds.get("aws_access_key_id")) != bool(creds.get("aws_secret_access_key")):
        raise InvalidRequest("credentials need both aws_access_key_id and aws_secret_access_key",
                             param="credentials")
    # No default endpoint: without endpoint_url the source is AWS S3 itself.
    endpoint, region = creds.pop("endpoint_url", None), creds.pop("region", None)
    if endpoint and (urlsplit(endpoint).scheme not in ("http", "https") or not urlsplit(endpoint).hostname):
        raise InvalidRequest("credentials.endpoint_url must be an http(s):// URL", param="credentials")
    config = {k: v for k, v in (("endpoint_url", endpoint), ("region", region)) if v}
    return Source("s3", Path(key).stem or bucket, f"s3://{bucket}/{key}", config,
                  {"bucket": bucket, "key": key, **creds})


def _parse_postgres(body: dict, settings: Settings) -> Source:
    from psycopg.conninfo import conninfo_to_dict

    dsn = _required(body, "db_connection", "source_type 'postgres'")
    query = _required(body, "db_query", "source_type 'postgres'").rstrip().rstrip(";").strip()
    if not re.match(r"(?is)^\s*(select|with|values|table)\b", query):
        raise InvalidRequest("db_query must be a single SELECT statement", param="db_query")
    dsn = re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", dsn)
    try:
        info = conninfo_to_dict(dsn)
    except Exception:  # psycopg's message echoes the string, password included: say it in our words
        raise InvalidRequest("db_connection is not a valid libpq connection string or postgresql:// URL",
                             param="db_connection") from None
    where = {"host": info.get("host") or "localhost", "port": str(info.get("port") or 5432),
             "dbname": info.get("dbname") or info.get("user") or "postgres"}
    if _same_database(where, settings.resolved_database_url):
        raise InvalidRequest("db_connection points at tuneyard's own database", param="db_connection")
    uri = f"postgresql://{where['host']}:{where['port']}/{where['dbname']}"
    identity = f"{uri}?user={info.get('user') or ''}"
    return Source("postgres", f"{where['dbname']}-query", uri, {**where, "db_query": query},
                  {"dsn": dsn, "identity_uri": identity})


def _same_database(where: dict, platform_url: str) -> bool:
    from sqlalchemy.engine import make_url

    url = make_url(platform_url)
    if not url.drivername.startswith("postgres"):
        return False
    loopback = {"localhost", "127.0.0.1", "::1", ""}

    def host(h: str | None) -> str:
        return "localhost" if (h or "") in loopback or (h or "").startswith("/") else h

    return (host(url.host) == host(where["host"]) and str(url.port or 5432) == where["port"]
            and (url.database or "") == where["dbname"])


def _parse_https(body: dict, settings: Settings) -> Source:
    uri = _required(body, "source_uri", "source_type 'https'")
    parts = urlsplit(uri)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("https", "http") or not parts.hostname or port == -1:
        raise InvalidRequest("source_uri must be an https:// URL to a JSONL file", param="source_uri")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise InvalidRequest("source_uri must use https:// (plain http is allowed only on loopback)",
                             param="source_uri")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host + (f":{port}" if port else "")
    shown = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return Source("https", Path(parts.path).stem or parts.hostname, shown, {}, {"url": uri, "identity_uri": uri})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- use cases -----------------------------------------------------------------------------------

def connect(db: Database, blobs: BlobStore, settings: Settings, org_id: str,
            body: dict[str, Any]) -> tuple[Dataset, bool]:
    """(dataset, created): the existing dataset for the same name and source, else a new snapshot."""
    source = parse_source(body, settings)
    with db.session(readonly=True) as session:
        existing = datasets.find_by_name(session, org_id, source.name, source.type)
        if existing is not None and existing.source_config.get("fingerprint") == source.fingerprint:
            return existing, False
    rows = read_rows(source, settings.max_upload_bytes)
    try:
        with db.session() as session:
            ds = datasets.create_from_rows(session, blobs, org_id, rows, name=source.name, source_type=source.type,
                                           source_uri=source.uri, source_config=source.stored_config(),
                                           max_bytes=settings.max_upload_bytes)
    except DatasetError as exc:  # raised while the rows were read (e.g. a bad JSON line in the file)
        raise InvalidRequest(f"Invalid dataset: {exc}", param=_main_param(source), code="invalid_dataset") from None
    return ds, True


def validate(settings: Settings, body: dict[str, Any]) -> dict[str, Any]:
    """Read and check the source without storing it; a source that fails is ``valid: false`` with a reason."""
    source = parse_source(body, settings)
    try:
        summary = check_rows(enumerate(read_rows(source, settings.max_upload_bytes), start=1))
    except (SourceError, PayloadTooLarge, DatasetError) as exc:
        reason = exc.message if isinstance(exc, TuneyardError) else f"Invalid dataset: {exc}"
        return validation_json(None, reason)
    return validation_json(summary, None)


def validation_json(summary: Summary | None, reason: str | None) -> dict[str, Any]:
    return {"object": "dataset_validation", "valid": summary is not None,
            "num_rows": summary.num_rows if summary else None, "format": summary.format if summary else None,
            "columns": summary.columns if summary else [], "preview": summary.preview if summary else [],
            "reason": reason}


def _main_param(source: Source) -> str:
    return {"hf": "huggingface_dataset", "postgres": "db_query"}.get(source.type, "source_uri")


# --- reading -------------------------------------------------------------------------------------

def read_rows(source: Source, max_bytes: int) -> Iterator[Any]:
    """The source's rows as JSON-ready values, stopping with PayloadTooLarge past ``max_bytes``."""
    reader = {"hf": _hf_rows, "s3": _s3_rows, "postgres": _pg_rows, "https": _https_rows}[source.type]
    total = 0
    for row in reader(source, max_bytes):
        total += len(json.dumps(row, ensure_ascii=False, default=str).encode()) + 1
        if total > max_bytes:
            raise PayloadTooLarge(f"The source holds more than the limit of {max_bytes} bytes",
                                  param=_main_param(source))
        yield row


def _hf_rows(source: Source, max_bytes: int) -> Iterator[Any]:
    cfg = source.config["huggingface_config"]
    mapping: dict[str, str] = cfg.get("column_mapping") or {}
    ds = _hf_split(source.config["huggingface_dataset"], source.secrets.get("local_path"), cfg["split"],
                   cfg.get("config_name"))
    columns = list(ds.column_names)
    if missing := [c for c in mapping if c not in columns]:
        raise SourceError(f"column_mapping names column(s) the dataset does not have: {', '.join(missing)} "
                          f"(columns: {', '.join(columns)})", param="huggingface_config.column_mapping")
    if clash := [d for s, d in mapping.items() if d in columns and d not in mapping and d != s]:
        raise SourceError(f"column_mapping would overwrite existing column(s): {', '.join(clash)}",
                          param="huggingface_config.column_mapping")
    for row in ds:
        yield {mapping.get(k, k): plain(v) for k, v in row.items()}


def _hf_split(repo: str, local: Path | None, split: str, config_name: str | None):
    """One split of a local dataset folder, or of a Hub dataset (from the Hub, else the local HF cache)."""
    import datasets as hf

    where = str(local) if local is not None else f"Hugging Face dataset {repo!r}"
    try:
        if local is not None:
            if not local.is_dir():
                raise SourceError(f"No dataset folder at {local}", param="huggingface_dataset")
            if (local / "dataset_dict.json").is_file() or (local / "state.json").is_file():
                loaded = hf.load_from_disk(str(local))      # written by save_to_disk
            else:
                loaded = hf.load_dataset(str(local), config_name, split=split)  # a folder of data files
        else:
            offline = _hub_offline()
            try:
                loaded = hf.load_dataset(repo, config_name, split=split)
            except (ConnectionError, FileNotFoundError) as exc:
                if offline:
                    raise SourceError(f"{where} is not in the local Hugging Face cache and the Hub is not "
                                      "reachable (offline mode)", param="huggingface_dataset") from None
                raise SourceError(f"Could not load {where}: {exc}", param="huggingface_dataset") from None
    except SourceError:
        raise
    except Exception as exc:  # the datasets library raises many types (not found, bad split, bad files...)
        raise SourceError(f"Could not load {where}: {type(exc).__name__}: {_first_line(exc)}",
                          param="huggingface_dataset") from None
    if isinstance(loaded, hf.DatasetDict):
        if split not in loaded:
            raise SourceError(f"{where} has no split {split!r} (splits: {', '.join(loaded)})",
                              param="huggingface_config.split")
        loaded = loaded[split]
    return loaded


_HUB: dict[str, Any] = {"checked_at": -1e9, "saved": None}   # saved: the offline flags before we forced them


def _hub_offline() -> bool:
    """True when Hub access is off (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) or the Hub does not answer.

    An unreachable Hub switches the datasets library to offline mode for this process (re-checked
    each minute), so a load uses the local cache at once instead of waiting on network timeouts.
    """
    import datasets.config as hf_config
    import httpx
    from huggingface_hub import constants as hub

    forced = _HUB["saved"] is not None
    if hf_config.HF_HUB_OFFLINE and not forced:
        return True
    now = time.monotonic()
    if now - _HUB["checked_at"] > 60:
        try:
            httpx.head(hub.ENDPOINT, timeout=HUB_PROBE_TIMEOUT_S)
            reachable = True
        except httpx.HTTPError:
            reachable = False
        _HUB["checked_at"] = now
        if not reachable and not forced:
            _HUB["saved"] = (hf_config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE)
            hf_config.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE = True
        elif reachable and forced:
            hf_config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE = _HUB["saved"]
            _HUB["saved"] = None
    return _HUB["saved"] is not None


def _s3_rows(source: Source, max_bytes: int) -> Iterator[Any]:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    s = source.secrets
    signed = bool(s.get("aws_access_key_id"))
    where = source.uri
    try:
        # Without credentials the read is anonymous: never the server's own AWS identity.
        client = boto3.session.Session().client(
            "s3", endpoint_url=source.config.get("endpoint_url"),
            region_name=source.config.get("region") or "us-east-1",
            aws_access_key_id=s.get("aws_access_key_id"), aws_secret_access_key=s.get("aws_secret_access_key"),
            aws_session_token=s.get("aws_session_token"),
            config=Config(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=60, retries={"max_attempts": 2},
                          **({} if signed else {"signature_version": UNSIGNED})))
        obj = client.get_object(Bucket=s["bucket"], Key=s["key"])
        if obj.get("ContentLength", 0) > max_bytes:
            raise PayloadTooLarge(f"{where} is larger than the limit of {max_bytes} bytes", param="source_uri")
        yield from _records(obj["Body"].iter_chunks(CHUNK), _kind(s["key"]), max_bytes)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        code, status = err.get("Code", ""), exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        reason = {
            "NoSuchBucket": f"bucket {s['bucket']!r} does not exist",
            "NoSuchKey": f"object {s['key']!r} does not exist in bucket {s['bucket']!r}",
            "InvalidAccessKeyId": "the access key id was refused",
            "SignatureDoesNotMatch": "the secret access key was refused",
            "AccessDenied": "access denied" + ("" if signed else " (no credentials were given, so the read was "
                                                              "anonymous)"),
            "ExpiredToken": "the session token has expired",
        }.get(code, f"{code or 'error'} (HTTP {status}): {err.get('Message', '')}".strip())
        raise SourceError(f"Could not read {where}: {reason}", param="source_uri") from None
    except DatasetError:
        raise
    except (BotoCoreError, ValueError) as exc:   # ValueError: an endpoint or region boto3 refuses
        raise SourceError(f"Could not reach S3 for {where}: {exc}", param="source_uri") from None


def _https_rows(source: Source, max_bytes: int) -> Iterator[Any]:
    import httpx

    url, shown = source.secrets["url"], source.uri
    timeout = httpx.Timeout(CONNECT_TIMEOUT_S * 2, read=60)
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True, max_redirects=5) as client:
            with client.stream("GET", url, headers={"Accept": "application/jsonl, application/json, */*"}) as r:
                if r.status_code >= 400:
                    raise SourceError(f"GET {shown} answered HTTP {r.status_code}", param="source_uri")
                declared = r.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise PayloadTooLarge(f"{shown} is larger than the limit of {max_bytes} bytes",
                                          param="source_uri")
                yield from _records(r.iter_bytes(CHUNK), _kind(urlsplit(url).path), max_bytes)
    except httpx.HTTPError as exc:
        raise SourceError(f"Could not fetch {shown}: {type(exc).__name__}: {exc}", param="source_uri") from None


def _pg_rows(source: Source, max_bytes: int) -> Iterator[Any]:
    import psycopg
    from psycopg.rows import dict_row

    where = source.uri
    try:
        conn = psycopg.connect(source.secrets["dsn"], connect_timeout=CONNECT_TIMEOUT_S,
                               application_name="tuneyard-connector")
    except psycopg.Error as exc:
        raise SourceError(f"Could not connect to {where}: {_first_line(exc)}", param="db_connection") from None
    try:
        conn.read_only = True
        with conn.transaction():
            conn.execute("SELECT set_config('statement_timeout', %s, true)", [f"{STATEMENT_TIMEOUT_S}s"])
            # A server-side cursor streams the rows, and DECLARE only accepts a single SELECT/VALUES.
            with conn.cursor(name="tuneyard_snapshot", row_factory=dict_row) as cur:
                cur.itersize = 500
                cur.execute(source.config["db_query"])
                for row in cur:
                    yield {str(k): plain(v) for k, v in row.items()}
    except psycopg.errors.QueryCanceled:
        raise SourceError(f"db_query ran past the statement timeout of {STATEMENT_TIMEOUT_S} s",
                          param="db_query") from None
    except psycopg.Error as exc:
        raise SourceError(f"db_query failed on {where}: {_first_line(exc)}", param="db_query") from None
    finally:
        conn.close()


def plain(value: Any) -> Any:
    """A JSON-ready copy of a value read from a source (Decimal, datetimes, bytes, numpy...)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, (datetime, date, dtime)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return plain(value.tolist())
    return str(value)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# --- file payloads (S3 objects, URLs) ------------------------------------------------------------

def _kind(path: str) -> str:
    suffix = Path(path).suffix.lower()
    return {".parquet": "parquet", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix, "auto")


def _capped(chunks: Iterable[bytes], max_bytes: int) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise PayloadTooLarge(f"The source file is larger than the limit of {max_bytes} bytes",
                                  param="source_uri")
        yield chunk


def _records(chunks: Iterable[bytes], kind: str, max_bytes: int) -> Iterator[Any]:
    """Rows of a JSONL file, a JSON array, or a Parquet file, read chunk by chunk."""
    chunks = _capped(chunks, max_bytes)
    if kind == "parquet":
        yield from _parquet_rows(chunks)
        return
    lines = _lines(chunks)
    head: list[bytes] = []
    for line in lines:
        head.append(line)
        if line.strip():
            break
    if kind in ("json", "auto") and head and head[-1].lstrip().startswith(b"["):
        text = b"".join(head) + b"".join(lines)
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DatasetError(f"the file is not a valid JSON array ({exc})") from None
        if not isinstance(data, list):
            raise DatasetError("a .json file must hold an array of row objects")
        yield from data
        return
    for _, row in parse_jsonl_lines(_chain(head, lines)):
        yield row


def _chain(first: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    buf = b""
    for chunk in chunks:
        buf += chunk
        *complete, buf = buf.split(b"\n")
        for line in complete:
            yield line + b"\n"
    if buf:
        yield buf


def _parquet_rows(chunks: Iterable[bytes]) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as f:
        for chunk in chunks:
            f.write(chunk)
        f.seek(0)
        try:
            parquet = pq.ParquetFile(f)
            for batch in parquet.iter_batches(batch_size=1000):
                for row in batch.to_pylist():
                    yield {k: plain(v) for k, v in row.items()}
        except (pa.ArrowException, OSError) as exc:
            raise DatasetError(f"not a readable Parquet file ({exc})") from None
