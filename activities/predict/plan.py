"""Planning a prediction run: resolve the versions, list the images, cut them into shards.

The image list is stored (``{out}/shards/plan-{sha256}.json``); the plan that travels in the
workflow's payloads names it by key and digest and gives each shard its slice and its
content address. Bad requests fail here, before any model runs: an unknown version, a
missing artifact, no images, an output prefix that overlaps the images or holds someone
else's objects.
"""

from __future__ import annotations

from activities.contracts.predict import (
    MAX_SHARDS,
    ImageSource,
    PredictPlan,
    PredictRequest,
    ResolvedModel,
    ShardRef,
    StoredObject,
)
from activities.dataset.formats import is_image
from activities.dataset.manifest import load_manifest
from activities.infra.errors import BadInputError
from activities.infra.settings import Settings
from activities.infra.signing import keyring
from activities.infra.storage import ObjectStore, safe_relative_path, sha256_bytes
from activities.predict import layout
from activities.predict.models import resolve
from activities.predict.records import PlanImage, StoredPlan, digest_of, dump
from activities.registry.core import Registry


def source_images(store: ObjectStore, settings: Settings, source: ImageSource) -> StoredPlan:
    """The images of ``source`` in key order (a prefix listing, or a snapshot's split)."""
    if source.snapshot is not None:
        manifest = load_manifest(store, source.snapshot)
        root = manifest.prefix.strip("/")
        chosen = [i for i in manifest.images if source.split in (None, i.split)]
        images = [
            PlanImage(key=i.key, etag=i.etag or i.sha256, rel=i.key.removeprefix(f"{root}/"))
            for i in sorted(chosen, key=lambda i: i.key)
        ]
        return StoredPlan(bucket=manifest.bucket, root=root, images=images)
    assert source.prefix is not None  # ImageSource names exactly one source
    bucket = source.bucket or settings.data_bucket
    root = source.prefix
    listed = store.list(bucket, f"{root}/")
    images = [
        PlanImage(key=info.key, etag=info.etag, rel=info.key[len(root) + 1 :])
        for info in listed
        if is_image(info.key)
    ]
    return StoredPlan(bucket=bucket, root=root, images=images)


def check_keys(stored: StoredPlan) -> None:
    """UnsafeKeyError (non-retryable) for an image whose path would escape the outputs."""
    for image in stored.images:
        safe_relative_path(image.rel)


def check_out(store: ObjectStore, out_bucket: str, request: PredictRequest) -> None:
    """BadInputError when ``out`` overlaps the images or holds objects we did not write."""
    source, out = request.source, request.out
    if source.prefix is not None and (source.bucket or out_bucket) == out_bucket:
        prefix = source.prefix
        if out == prefix or out.startswith(f"{prefix}/") or prefix.startswith(f"{out}/"):
            raise BadInputError(
                f"output prefix {out!r} overlaps the image prefix {prefix!r}: choose another out"
            )
    foreign = [i.key for i in store.list(out_bucket, f"{out}/") if not layout.is_ours(out, i.key)]
    if foreign:
        raise BadInputError(
            f"output prefix {out_bucket}/{out}/ holds {len(foreign)} objects a prediction run "
            f"did not write (e.g. {foreign[0]!r}): choose an empty prefix"
        )


def _models(
    registry: Registry, request: PredictRequest
) -> tuple[ResolvedModel, ResolvedModel | None]:
    version = request.version if request.version is not None else request.alias
    model = resolve(registry, request.model, version, request.backend)
    compare = None
    if request.compare_version is not None:
        compare = resolve(registry, request.model, request.compare_version, request.backend)
        if compare.version == model.version:
            raise BadInputError(f"compare_version names {model.label} itself: name another")
        if compare.class_names != model.class_names:
            raise BadInputError(
                f"{compare.label} has classes {compare.class_names} but {model.label} has "
                f"{model.class_names}: their predictions cannot be compared"
            )
    return model, compare


def _imgsz(registry: Registry, request: PredictRequest, model: ResolvedModel) -> int:
    imgsz = request.options.imgsz or model.imgsz
    static = request.backend == "onnx" and imgsz != model.imgsz
    if static and not registry.metadata(model.model, model.version).onnx_dynamic:
        raise BadInputError(
            f"model.onnx of {model.label} was exported for imgsz {model.imgsz} with static "
            f"shapes: predict with imgsz {model.imgsz}, or with the pytorch backend"
        )
    return imgsz


def shard_refs(stored: StoredPlan, size: int, content: dict[str, object]) -> list[ShardRef]:
    """Slices of ``size`` images; a digest covers ``content`` and its images' key, etag, path."""
    shards = []
    for index, start in enumerate(range(0, len(stored.images), size)):
        chunk = stored.images[start : start + size]
        digest = digest_of({**content, "images": [[i.key, i.etag, i.rel] for i in chunk]})
        shards.append(ShardRef(index=index, start=start, images=len(chunk), digest=digest))
    return shards


def plan(store: ObjectStore, settings: Settings, request: PredictRequest) -> PredictPlan:
    """Resolve, list, check, store the image list, and cut it into content-addressed shards."""
    registry = Registry(store, settings.models_bucket, keyring(settings))
    model, compare = _models(registry, request)
    imgsz = _imgsz(registry, request, model)
    out_bucket = settings.data_bucket
    check_out(store, out_bucket, request)
    stored = source_images(store, settings, request.source)
    check_keys(stored)
    if not stored.images:
        where = request.source.snapshot.key if request.source.snapshot else request.source.prefix
        raise BadInputError(f"no images to predict on in {stored.bucket}/{where}")
    size = request.shard_size or settings.predict_shard_size
    if -(-len(stored.images) // size) > MAX_SHARDS:
        raise BadInputError(
            f"{len(stored.images)} images in shards of {size} make more than {MAX_SHARDS} "
            f"shards: use a shard size of at least {-(-len(stored.images) // MAX_SHARDS)}"
        )
    data = dump(stored)
    sha = sha256_bytes(data)
    key = layout.plan_key(request.out, sha)
    store.put_bytes(out_bucket, key, data, content_type="application/json")
    content = {
        "schema": 1,
        "model": model.weights.sha256,
        "compare": compare.weights.sha256 if compare else None,
        "imgsz": imgsz,
        "options": request.options.model_dump(mode="json"),
        "formats": sorted(request.formats),
    }
    return PredictPlan(
        plan=StoredObject(bucket=out_bucket, key=key, sha256=sha),
        model=model,
        compare=compare,
        images=len(stored.images),
        imgsz=imgsz,
        shards=shard_refs(stored, size, content),
        out_bucket=out_bucket,
    )
