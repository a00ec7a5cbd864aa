"""The single Ultralytics offline bootstrap, shared by workers, tests and the demo.

Call :func:`bootstrap_offline` before ``import ultralytics`` anywhere in the process. It pins the
environment Ultralytics reads at import time (offline, no auto-install, config dir), puts the
fonts Ultralytics would otherwise download in place, then imports Ultralytics and neutralises
every code path that would reach the network during train/val/export of a detection model:

* settings: telemetry sync, Platform API key and all logger integrations off;
* ``check_amp``: the CUDA check downloads ``yolo26n.pt``; replaced by an offline decision;
* ``safe_download``/``get_github_assets``/``is_url(check=True)``: fail fast instead of trying
  the network (a blocked egress would otherwise hang for the 30 s connect timeout per try);
* ``ULTRALYTICS_SAFE_LOAD``: every checkpoint Ultralytics opens (``YOLO(path)``, resume) is
  unpickled with ``torch.load(weights_only=True)`` and Ultralytics' allowlist of model classes,
  and model yamls are parsed without ``eval`` (``docs/security.md``, "Pickles and signatures").

Child processes inherit ``YOLO_CONFIG_DIR`` and the other variables, so calling this again in a
child (with no argument) lands on the same directory.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from activities.infra.errors import ConfigurationError
from activities.infra.files import atomic_copy

log = logging.getLogger(__name__)

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
_SETTINGS_OFF = {
    "sync": False,  # no Google Analytics events / Sentry reports
    "api_key": "",  # no Ultralytics Platform streaming of metrics and checkpoints
    "clearml": False,
    "comet": False,
    "dvc": False,
    "mlflow": False,
    "neptune": False,
    "raytune": False,
    "tensorboard": False,
    "wandb": False,
    "hub": False,
    "vscode_msg": False,  # console noise only
    "openvino_msg": False,  # console noise only
}
_lock = threading.Lock()
_config_dir: Path | None = None


def yolo_config_dir() -> Path:
    """The directory given to Ultralytics as ``YOLO_CONFIG_DIR`` (bootstrapping if needed).

    Ultralytics keeps ``settings.json`` and the fonts in its ``Ultralytics/`` subdirectory.
    """
    return bootstrap_offline()


def _resolve_dir(config_dir: Path | None) -> Path:
    if config_dir is not None:
        return Path(config_dir).expanduser().resolve()
    if _config_dir is not None:
        return _config_dir
    if env_dir := os.environ.get("YOLO_CONFIG_DIR"):  # inherited from a bootstrapped parent
        return Path(env_dir).expanduser().resolve()
    from activities.infra.settings import Settings

    return (Settings().cache_dir / "ultralytics").expanduser().resolve()


def _bundled_font() -> Path:
    import matplotlib

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    if not font.is_file():
        raise ConfigurationError(
            f"matplotlib's bundled font {font} is missing: reinstall matplotlib"
        )
    return font


def _place_fonts(ultra_dir: Path) -> None:
    """Copy DejaVuSans as the fonts Ultralytics looks for (atomic, safe across processes)."""
    ultra_dir.mkdir(parents=True, exist_ok=True)
    source: Path | None = None
    for name in FONT_NAMES:
        target = ultra_dir / name
        if target.is_file() and target.stat().st_size > 0:
            continue
        source = source or _bundled_font()
        atomic_copy(source, target)


def offline_check_amp(model: Any) -> bool:
    """``check_amp`` without its network download: AMP off on CPU/MPS and on the GPUs Ultralytics
    blacklists, on elsewhere (AMP is safe on every modern CUDA GPU)."""
    import re

    import torch

    device = next(model.parameters()).device
    if device.type != "cuda":
        return False
    name = torch.cuda.get_device_name(device)
    bad = r"(nvidia|geforce|quadro|tesla).*?(1660|1650|1630|t400|t550|t600|t1000|t1200|t2000|k40m)"
    if re.search(bad, name, re.IGNORECASE):
        log.warning("AMP disabled on %s (known NaN/zero-mAP issues)", name)
        return False
    return True


def _unpatch_pil_open() -> None:
    """Give PIL.Image.open back when the HEIF plugin is not installed.

    why: Ultralytics replaces PIL.Image.open process-wide; on an unidentifiable file it tries
    to pip-install pi-heif, which offline turns a corrupt image into ModuleNotFoundError in
    *any* code of the worker (dataset validation included) instead of UnidentifiedImageError.
    """
    import importlib.util

    from PIL import Image
    from ultralytics.utils import patches

    if importlib.util.find_spec("pi_heif") is None:
        Image.open = patches._image_open


def _patch_ultralytics() -> None:
    """Import Ultralytics (environment already pinned) and neutralise its network paths."""
    from ultralytics import settings
    from ultralytics.utils import checks, downloads

    # why: sync/api_key send telemetry and training data out; integrations import remote loggers.
    wanted = {k: v for k, v in _SETTINGS_OFF.items() if k in settings.defaults}
    changed = {k: v for k, v in wanted.items() if settings.get(k) != v}
    if changed:  # only write settings.json when needed (idempotent, no write races)
        settings.update(changed)
    # why: the Platform callback reads ULTRALYTICS_API_KEY from the env at each training start.
    os.environ.pop("ULTRALYTICS_API_KEY", None)

    _unpatch_pil_open()
    if getattr(downloads, "_sentinel_offline", False):
        return
    original_safe_download = downloads.safe_download
    original_is_url = downloads.is_url
    original_github_assets = downloads.get_github_assets
    original_check_amp = checks.check_amp

    def safe_download(url: Any, file: Any = None, dir: Any = None, **kwargs: Any) -> Any:
        # why: safe_download tries the network *before* checking YOLO_OFFLINE; serve only cache.
        text = str(url)
        if "://" in text:
            local = Path(dir or ".") / (file or downloads.url2file(text))
            if not local.is_file():
                raise ConnectionError(f"offline (YOLO_OFFLINE=1): refusing to download {text}")
        return original_safe_download(url, file=file, dir=dir, **kwargs)

    def is_url(url: Any, check: bool = False) -> bool:
        # why: check=True sends a HEAD request (check_font would probe GitHub for fonts).
        return False if check else original_is_url(url)

    def get_github_assets(*args: Any, **kwargs: Any) -> tuple[str, list[str]]:
        # why: attempt_download_asset asks api.github.com about any missing *.pt path.
        return "", []

    replacements = {  # id(original) -> replacement
        id(original_safe_download): safe_download,
        id(original_is_url): is_url,
        id(original_github_assets): get_github_assets,
        # why: on CUDA check_amp downloads yolo26n.pt to compare FP32 vs AMP outputs.
        id(original_check_amp): offline_check_amp,
    }
    downloads.safe_download = safe_download
    downloads.is_url = is_url
    downloads.get_github_assets = get_github_assets
    checks.check_amp = offline_check_amp
    # Modules loaded later import the patched names; rebind those already loaded
    # (e.g. ultralytics.engine.trainer's `from ultralytics.utils.checks import check_amp`).
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "ultralytics" or name.startswith("ultralytics.")):
            continue
        for attr, value in list(vars(module).items()):
            if id(value) in replacements:
                setattr(module, attr, replacements[id(value)])
            # why: ONLINE/AUTOINSTALL are import-time constants; fix them if imported earlier.
            elif attr in ("ONLINE", "AUTOINSTALL") and value is True:
                setattr(module, attr, False)
            # why: SAFE_LOAD is an import-time constant too; restricted loading is not optional.
            elif attr == "SAFE_LOAD" and value is False:
                setattr(module, attr, True)
    downloads._sentinel_offline = True


def bootstrap_offline(config_dir: Path | None = None) -> Path:
    """Make Ultralytics fully offline for this process; returns the ``YOLO_CONFIG_DIR`` used.

    Idempotent and thread-safe. ``config_dir`` defaults to the directory of an earlier call, then
    to an inherited ``YOLO_CONFIG_DIR``, then to ``Settings().cache_dir / "ultralytics"``.
    Raises ConfigurationError when Ultralytics was already imported with another config dir
    (the fix: call this before anything imports ``ultralytics``).
    """
    global _config_dir
    with _lock:
        target = _resolve_dir(config_dir)
        utils = sys.modules.get("ultralytics.utils")
        if utils is not None:
            active = Path(utils.USER_CONFIG_DIR).resolve()
            if active != target / "Ultralytics":
                raise ConfigurationError(
                    f"ultralytics was imported before bootstrap_offline() and uses {active}, "
                    f"not {target / 'Ultralytics'}: call bootstrap_offline() first"
                )
        os.environ["YOLO_OFFLINE"] = "1"  # why: ONLINE=False (no telemetry, pip checks, Sentry)
        os.environ["YOLO_AUTOINSTALL"] = "0"  # why: never pip-install missing requirements
        os.environ["ULTRALYTICS_SAFE_LOAD"] = "1"  # why: no code runs from a checkpoint
        os.environ.setdefault("YOLO_VERBOSE", "True")
        os.environ["YOLO_CONFIG_DIR"] = str(target)
        # why: importing ultralytics sets OMP_NUM_THREADS=1 when unset, starving CPU torch.
        os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
        # why: check_det_dataset/plotting call check_font, which downloads Arial from GitHub.
        _place_fonts(target / "Ultralytics")
        _patch_ultralytics()
        _config_dir = target
        return target
