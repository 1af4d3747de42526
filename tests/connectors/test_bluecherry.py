"""BlueCherry exports picked up from a folder: stored exactly as a file drop of the same exports."""

from __future__ import annotations

import json
import shutil

import pytest

from driftwatch.config import Config, default_feeds
from driftwatch.errors import UserError
from driftwatch.filedrop import load_directory
from driftwatch.pull import pull_sources
from driftwatch.store import Store

EXPORT = (
    "Style,Color #,Size,Location,Total QOH,Total Open,Total Ship To WIP,Safety Stock,Avail QOH,Last Modified\n"
    "00412,010,M,WH01,10,2,5,1,7,11/01/2026\n"
    "00412,010,L,WH01,oops,2,5,1,7,11/01/2026\n"
)


@pytest.fixture
def exports(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "inventory.csv").write_text(EXPORT)
    (folder / "_manifest.json").write_text(json.dumps({"captured_at": "2026-11-23T02:00:00Z"}))
    return folder


def test_pull_from_a_folder_equals_loading_the_same_files_as_a_drop(tmp_path, exports):
    cfg = Config(feeds=default_feeds(), raw={"sources": {"bluecherry": {"path": str(exports)}}})
    with Store(tmp_path / "pulled.duckdb") as pulled:
        results = pull_sources(pulled, cfg)
        assert [(r.entity, r.rows, r.quarantined, r.error) for r in results] == [("inventory", 1, 1, None)]
        from_pull = pulled.latest("bluecherry", "inventory")
        problem = pulled.quarantine().row(0, named=True)
        assert (problem["origin"], problem["line"], problem["column"]) == (str(exports / "inventory.csv"), 3, "on_hand")
        pulled_info = pulled.latest_snapshot("bluecherry", "inventory")
    drop = tmp_path / "drop" / "bluecherry"
    shutil.copytree(exports, drop)
    with Store(tmp_path / "dropped.duckdb") as dropped:
        load_directory(dropped, tmp_path / "drop", cfg)
        assert dropped.latest("bluecherry", "inventory").equals(from_pull)
        assert dropped.latest_snapshot("bluecherry", "inventory").content_hash == pulled_info.content_hash


def test_every_pull_of_the_exports_is_whole_and_says_why(tmp_path, exports):
    cfg = Config(feeds=default_feeds(), raw={"sources": {"bluecherry": {"path": str(exports)}}})
    with Store(tmp_path / "pulled.duckdb") as store:
        for _ in range(2):
            (result,) = pull_sources(store, cfg, checkpoint_dir=tmp_path / "pulls")
            assert (result.kind, result.detail) == ("full", "its report exports are whole files")


def test_missing_folder_is_reported_and_other_sources_still_pull(tmp_path, exports):
    cfg = Config(feeds=default_feeds(), raw={"sources": {"bluecherry": {"path": str(tmp_path / "nowhere")}}})
    with Store(tmp_path / "s.duckdb") as store:
        results = pull_sources(store, cfg)
    assert results[0].error == f"sources.bluecherry.path: {tmp_path / 'nowhere'} is not a folder"


def test_no_way_to_reach_the_exports_is_a_clear_error(tmp_path):
    from driftwatch.connectors.bluecherry.connector import Connector

    with pytest.raises(UserError, match="set `path`"):
        Connector({})


def test_pull_from_an_sftp_drop(tmp_path, exports):
    from sftp_server import SftpServer

    with SftpServer(exports, "bc", "drop-password") as server:
        settings = {"sftp_url": server.url, "sftp_password_env": "BC_SFTP_PASSWORD"}
        cfg = Config(feeds=default_feeds(), raw={"sources": {"bluecherry": settings}})
        with Store(tmp_path / "s.duckdb") as store:
            good = pull_sources(store, cfg, env={"BC_SFTP_PASSWORD": "drop-password"}, checkpoint_dir=tmp_path)
            assert [(r.entity, r.rows, r.error) for r in good] == [("inventory", 1, None)]
            info = store.latest_snapshot("bluecherry", "inventory")
            assert info.captured_at.isoformat() == "2026-11-23T02:00:00+00:00"  # the manifest came along
            bad = pull_sources(store, cfg, env={"BC_SFTP_PASSWORD": "wrong"}, checkpoint_dir=tmp_path)
    assert bad[0].error.startswith("sources.bluecherry: SFTP 127.0.0.1: AuthenticationException")
    assert "wrong" not in bad[0].error
