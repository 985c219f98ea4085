"""``tuneyard datasets`` and ``tuneyard rewards``."""

from __future__ import annotations

from pathlib import Path

import typer

from tuneyard.cli.common import (
    JSON_OPTION,
    api_command,
    console,
    fail,
    get_client,
    parse_kv,
    print_fields,
    print_json,
    print_page,
)

datasets_app = typer.Typer(help="Datasets: upload JSONL, connect external sources, list, inspect.",
                           no_args_is_help=True)
rewards_app = typer.Typer(help="Reward functions: Python files scored during GRPO.", no_args_is_help=True)

DATASET_COLUMNS = [("id", "id"), ("name", "name"), ("format", "format"), ("num_rows", "rows"),
                   ("source_type", "source"), ("created_at", "created")]
DATASET_FIELDS = ["id", "name", "format", "num_rows", "bytes", "columns", "filename", "source_type", "source_uri",
                  "huggingface_dataset", "created_at"]
REWARD_COLUMNS = [("id", "id"), ("name", "name"), ("format", "format"), ("entrypoint", "entrypoint"),
                  ("created_at", "created")]


def readable_file(path: Path) -> Path:
    path = path.expanduser()
    if not path.is_file():
        fail(f"{path}: no such file")
    return path


@datasets_app.command("upload")
@api_command
def datasets_upload(file: Path = typer.Argument(..., help="A JSONL file: one JSON object per line."),
                    name: str = typer.Option(None, "--name", "-n", help="Defaults to the file name's stem."),
                    json_out: bool = JSON_OPTION) -> None:
    """Upload a JSONL dataset (checked line by line; the format is detected)."""
    path = readable_file(file)
    with get_client() as client:
        ds = client.datasets.upload(path, name=name)
    if json_out:
        print_json(ds)
    else:
        console.print(f"Uploaded {ds.id}  {ds.name}: {ds.num_rows} rows, format {ds.format}")


@datasets_app.command("list")
@api_command
def datasets_list(limit: int = typer.Option(20, "--limit"), after: str = typer.Option(None, "--after"),
                  json_out: bool = JSON_OPTION) -> None:
    """List datasets, newest first."""
    with get_client() as client:
        page = client.datasets.list(limit=limit, after=after)
    print_page(page, DATASET_COLUMNS, json_out, empty="no datasets yet: `tuneyard datasets upload FILE`",
               what="datasets")


@datasets_app.command("get")
@api_command
def datasets_get(dataset_id: str, json_out: bool = JSON_OPTION) -> None:
    """Show a dataset and its first rows."""
    with get_client() as client:
        ds = client.datasets.get(dataset_id)
    if json_out:
        print_json(ds)
        return
    print_fields(ds, DATASET_FIELDS)
    if ds.preview:
        console.print("[bold]preview[/bold]")
        for row in ds.preview[:5]:
            console.print(f"  {row}", markup=False, soft_wrap=True)


def _connect_options(name, source_type, hf_dataset, split, config_name, column_map, source_uri, db_connection,
                     db_query) -> dict:
    hf_config = None
    if hf_dataset:
        hf_config = {"split": split}
        if config_name:
            hf_config["config_name"] = config_name
        if column_map:
            hf_config["column_mapping"] = parse_kv(column_map, "--column-map")
    return {"name": name, "source_type": source_type, "huggingface_dataset": hf_dataset,
            "huggingface_config": hf_config, "source_uri": source_uri, "db_connection": db_connection,
            "db_query": db_query}


NAME = typer.Option(None, "--name", "-n")
SOURCE = typer.Option("hf", "--source-type", help="hf, s3, postgres or https.")
HF = typer.Option(None, "--hf-dataset", help="A Hugging Face dataset repo (source hf).")
SPLIT = typer.Option("train", "--split")
CONFIG_NAME = typer.Option(None, "--config-name")
COLUMN_MAP = typer.Option(None, "--column-map", help="source=target column renames, repeatable.")
URI = typer.Option(None, "--uri", help="s3://bucket/key.jsonl or https://… (sources s3, https).")
DB = typer.Option(None, "--db-connection", help="A Postgres URL (source postgres).")
QUERY = typer.Option(None, "--db-query", help="The SELECT whose rows become the dataset.")


@datasets_app.command("connect")
@api_command
def datasets_connect(name: str = NAME, source_type: str = SOURCE, hf_dataset: str = HF, split: str = SPLIT,
                     config_name: str = CONFIG_NAME, column_map: list[str] = COLUMN_MAP, uri: str = URI,
                     db_connection: str = DB, db_query: str = QUERY, json_out: bool = JSON_OPTION) -> None:
    """Snapshot an external source (Hugging Face, S3, Postgres, HTTPS) into a dataset."""
    body = _connect_options(name, source_type, hf_dataset, split, config_name, column_map, uri, db_connection,
                            db_query)
    with get_client() as client:
        ds = client.datasets.connect(**body)
    if json_out:
        print_json(ds)
    else:
        console.print(f"Connected {ds.id}  {ds.name}: {ds.num_rows} rows, format {ds.format} "
                      f"(from {ds.source_type})")


@datasets_app.command("validate")
@api_command
def datasets_validate(name: str = NAME, source_type: str = SOURCE, hf_dataset: str = HF, split: str = SPLIT,
                      config_name: str = CONFIG_NAME, column_map: list[str] = COLUMN_MAP, uri: str = URI,
                      db_connection: str = DB, db_query: str = QUERY, json_out: bool = JSON_OPTION) -> None:
    """Check an external source without storing it."""
    body = _connect_options(name, source_type, hf_dataset, split, config_name, column_map, uri, db_connection,
                            db_query)
    with get_client() as client:
        result = client.datasets.validate(**body)
    if json_out:
        print_json(result)
        return
    print_fields({k: v for k, v in result.items() if k != "preview"})
    if not result.get("valid", True):
        raise typer.Exit(1)


@datasets_app.command("delete")
@api_command
def datasets_delete(dataset_id: str, json_out: bool = JSON_OPTION) -> None:
    """Delete a dataset and its file."""
    with get_client() as client:
        body = client.datasets.delete(dataset_id)
    print_json(body) if json_out else console.print(f"Deleted {dataset_id}")


@rewards_app.command("upload")
@api_command
def rewards_upload(file: Path = typer.Argument(..., help="A .py file defining reward(prompts, completions, **kw)."),
                   name: str = typer.Option(None, "--name", "-n"),
                   format: str = typer.Option("trl", "--format", help="trl or miles."),
                   json_out: bool = JSON_OPTION) -> None:
    """Upload a reward function (it only ever runs inside the training job)."""
    path = readable_file(file)
    with get_client() as client:
        rf = client.reward_functions.upload(path, name=name, format=format)
    if json_out:
        print_json(rf)
    else:
        console.print(f"Uploaded {rf.id}  {rf.name} ({rf.format}, entrypoint {rf.entrypoint})")


@rewards_app.command("list")
@api_command
def rewards_list(limit: int = typer.Option(20, "--limit"), after: str = typer.Option(None, "--after"),
                 json_out: bool = JSON_OPTION) -> None:
    """List reward functions, newest first."""
    with get_client() as client:
        page = client.reward_functions.list(limit=limit, after=after)
    print_page(page, REWARD_COLUMNS, json_out, empty="no reward functions yet: `tuneyard rewards upload FILE`",
               what="reward functions")


@rewards_app.command("get")
@api_command
def rewards_get(reward_id: str, source: bool = typer.Option(False, "--source", help="Print the code too."),
                json_out: bool = JSON_OPTION) -> None:
    """Show a reward function."""
    with get_client() as client:
        rf = client.reward_functions.get(reward_id)
    if json_out:
        print_json(rf)
        return
    print_fields(rf, ["id", "name", "format", "entrypoint", "filename", "bytes", "created_at"])
    if source and rf.source:
        console.print(rf.source, markup=False, highlight=False)


@rewards_app.command("delete")
@api_command
def rewards_delete(reward_id: str, json_out: bool = JSON_OPTION) -> None:
    """Delete a reward function."""
    with get_client() as client:
        body = client.reward_functions.delete(reward_id)
    print_json(body) if json_out else console.print(f"Deleted {reward_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
    app.add_typer(rewards_app, name="rewards")

