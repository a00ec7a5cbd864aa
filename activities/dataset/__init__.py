"""Dataset assembly and materialization.

* :mod:`.formats` YOLO / COCO / Roboflow layouts -> candidate images + raw labels
* :mod:`.validation` image and label checks with a report
* :mod:`.split` stable, hash-based split (golden test prefix, Roboflow folders)
* :mod:`.manifest` the snapshot manifest and its content hash
* :mod:`.cache` the local content-addressed object cache
* :mod:`.verified` which images count as verified (assembly and the controller's count)
* :mod:`.assemble` the assembly itself; :mod:`.activity` its Temporal activity
* :mod:`.materialize` snapshot -> local Ultralytics dataset directory
"""

from activities.dataset.activity import DatasetActivities
from activities.dataset.assemble import assemble
from activities.dataset.manifest import Manifest, ManifestImage, load_manifest
from activities.dataset.materialize import MaterializedDataset, dataset_dir, materialize_snapshot

__all__ = [
    "DatasetActivities",
    "Manifest",
    "ManifestImage",
    "MaterializedDataset",
    "assemble",
    "dataset_dir",
    "load_manifest",
    "materialize_snapshot",
]
