"""The Ultralytics offline bootstrap.

Everything that imports ultralytics runs in a child interpreter (``sys.executable``) so this
test process keeps a clean environment and no Ultralytics import-time state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import matplotlib
import pytest
import torch

from activities.infra import yolo_env

REPO_ROOT = Path(__file__).resolve().parents[2]
DEJAVU = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def _run_child(code: str, env_extra: dict[str, str], timeout: float = 120) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "ULTRALYTICS_"))}
    env.update(env_extra)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_bootstrap_in_a_fresh_process(tmp_path: Path) -> None:
    """Default dir from settings, idempotence, fonts, settings, and every network patch."""
    cache = tmp_path / "cache"
    out = _run_child(
        """
        import json, os
        from pathlib import Path
        from activities.infra.yolo_env import bootstrap_offline, offline_check_amp, yolo_config_dir
        from activities.infra.errors import ConfigurationError

        first = bootstrap_offline()
        second = bootstrap_offline()
        third = yolo_config_dir()
        again_explicit = bootstrap_offline(first)

        import ultralytics
        from ultralytics import settings
        from ultralytics.engine import trainer
        from ultralytics.utils import USER_CONFIG_DIR, checks, downloads

        import socket
        reached = []  # every attempt to resolve or connect from here on
        real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect
        def getaddrinfo(*args, **kwargs):
            reached.append(("getaddrinfo", str(args[0])))
            return real_getaddrinfo(*args, **kwargs)
        def connect(self, address):
            reached.append(("connect", str(address)))
            return real_connect(self, address)
        socket.getaddrinfo, socket.socket.connect = getaddrinfo, connect
        try:
            downloads.safe_download("https://example.invalid/x.pt", dir=str(first))
            refused = False
        except ConnectionError:
            refused = True
        network_during_download = list(reached)
        try:
            bootstrap_offline(Path(first).parent / "elsewhere")
            mismatch = None
        except ConfigurationError as exc:
            mismatch = str(exc)
        print(json.dumps({
            "dirs": [str(first), str(second), str(third), str(again_explicit)],
            "env": {k: os.environ.get(k) for k in
                    ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_VERBOSE", "YOLO_CONFIG_DIR")},
            "user_config_dir": str(USER_CONFIG_DIR),
            "settings": {k: settings[k] for k in settings if k in (
                "sync", "api_key", "clearml", "comet", "dvc", "mlflow", "raytune",
                "tensorboard", "wandb")},
            "trainer_check_amp": trainer.check_amp is offline_check_amp,
            "checks_check_amp": checks.check_amp is offline_check_amp,
            "online": [ultralytics.utils.ONLINE, checks.ONLINE, checks.AUTOINSTALL],
            "font": str(checks.check_font("Arial.ttf")),
            "font_unicode": str(checks.check_font("Arial.Unicode.ttf")),
            "is_url_check": downloads.is_url("https://github.com", check=True),
            "is_url": downloads.is_url("https://github.com"),
            "github_assets": list(downloads.get_github_assets("ultralytics/assets")),
            "download_refused": refused,
            "network_during_download": network_during_download,
            "mismatch": mismatch,
        }))
        """,
        {"SENTINEL_CACHE_DIR": str(cache)},
    )
    expected = (cache / "ultralytics").resolve()
    assert out["dirs"] == [str(expected)] * 4
    assert out["env"] == {
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "0",
        "YOLO_VERBOSE": "True",
        "YOLO_CONFIG_DIR": str(expected),
    }
    assert out["user_config_dir"] == str(expected / "Ultralytics")
    assert out["settings"].pop("api_key") == ""
    assert set(out["settings"].values()) == {False}
    assert out["trainer_check_amp"] and out["checks_check_amp"]
    assert out["online"] == [False, False, False]
    assert out["font"] == str(expected / "Ultralytics" / "Arial.ttf")
    assert out["font_unicode"] == str(expected / "Ultralytics" / "Arial.Unicode.ttf")
    assert out["is_url_check"] is False and out["is_url"] is True
    assert out["github_assets"] == ["", []]
    assert out["download_refused"]
    assert out["network_during_download"] == []  # refused before any lookup or connect
    assert out["mismatch"] and "before bootstrap_offline" in out["mismatch"]
    for name in yolo_env.FONT_NAMES:
        assert (expected / "Ultralytics" / name).read_bytes() == DEJAVU.read_bytes()


def test_bootstrap_after_an_early_import(tmp_path: Path) -> None:
    """Same dir: the import-time constants are fixed up; another dir: a clear error."""
    out = _run_child(
        """
        import json, os
        from pathlib import Path
        import ultralytics.engine.trainer
        from ultralytics.utils import checks
        from activities.infra.errors import ConfigurationError
        from activities.infra.yolo_env import bootstrap_offline, offline_check_amp
        try:
            bootstrap_offline(Path(os.environ["OTHER_DIR"]))
            error = None
        except ConfigurationError as exc:
            error = str(exc)
        # Simulate an import on a host with internet (the child itself never goes online).
        ultralytics.utils.ONLINE = checks.ONLINE = True
        autoinstall_before = checks.AUTOINSTALL
        bootstrap_offline()  # YOLO_CONFIG_DIR inherited: the dir ultralytics already uses
        print(json.dumps({
            "online": [autoinstall_before, ultralytics.utils.ONLINE, checks.ONLINE,
                       checks.AUTOINSTALL],
            "amp": ultralytics.engine.trainer.check_amp is offline_check_amp,
            "error": error,
        }))
        """,
        {
            "SENTINEL_CACHE_DIR": str(tmp_path / "cache"),
            "YOLO_CONFIG_DIR": str(tmp_path / "x"),
            "YOLO_OFFLINE": "1",  # no DNS probe from this test at import time
            "OTHER_DIR": str(tmp_path / "other"),
        },
    )
    assert out["online"] == [True, False, False, False]
    assert out["amp"] is True
    assert out["error"] and "call bootstrap_offline() first" in out["error"]


def test_fonts_are_placed_once(tmp_path: Path) -> None:
    target = tmp_path / "Ultralytics"
    yolo_env._place_fonts(target)
    stats = {name: (target / name).stat().st_mtime_ns for name in yolo_env.FONT_NAMES}
    for name in yolo_env.FONT_NAMES:
        assert (target / name).read_bytes() == DEJAVU.read_bytes()
    yolo_env._place_fonts(target)
    assert {name: (target / name).stat().st_mtime_ns for name in yolo_env.FONT_NAMES} == stats
    assert sorted(p.name for p in target.iterdir()) == sorted(yolo_env.FONT_NAMES)  # no .part


def test_inherited_config_dir_wins_over_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(yolo_env, "_config_dir", None)
    monkeypatch.setenv("SENTINEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("YOLO_CONFIG_DIR", raising=False)
    assert yolo_env._resolve_dir(None) == (tmp_path / "cache" / "ultralytics").resolve()
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "parent"))
    assert yolo_env._resolve_dir(None) == (tmp_path / "parent").resolve()
    assert yolo_env._resolve_dir(tmp_path / "explicit") == (tmp_path / "explicit").resolve()


def _model_on(device: str) -> types.SimpleNamespace:
    param = types.SimpleNamespace(device=torch.device(device))
    return types.SimpleNamespace(parameters=lambda: iter([param]))


def test_offline_check_amp(monkeypatch: pytest.MonkeyPatch) -> None:
    assert yolo_env.offline_check_amp(_model_on("cpu")) is False
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert yolo_env.offline_check_amp(_model_on("cuda:0")) is True
    monkeypatch.setattr(
        torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce GTX 1660"
    )
    assert yolo_env.offline_check_amp(_model_on("cuda:0")) is False


def test_corrupt_images_stay_unidentified_after_bootstrap(tmp_path: Path) -> None:
    """Ultralytics' PIL patch must not turn a corrupt image into an install attempt."""
    out = _run_child(
        """
        import io, json
        from activities.infra.yolo_env import bootstrap_offline
        bootstrap_offline()
        from PIL import Image, UnidentifiedImageError
        try:
            Image.open(io.BytesIO(b"not an image at all"))
            outcome = "opened"
        except UnidentifiedImageError:
            outcome = "unidentified"
        except Exception as exc:
            outcome = type(exc).__name__
        print(json.dumps({"outcome": outcome}))
        """,
        {"SENTINEL_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert out["outcome"] == "unidentified"
