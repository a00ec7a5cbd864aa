"""Names of activities, workflows and their handlers: the only link between workflow code and
the code that calls it (activities, client side).

Every ``@activity.defn``, ``@workflow.defn``, ``@workflow.signal``, ``@workflow.query`` and
``@workflow.update`` takes its name from here, and callers use the same constants; renaming a
handler in Python never changes what is recorded in Temporal's histories.
"""

# Pipeline stages
ASSEMBLE_DATASET = "assemble_dataset"
TRAIN = "train"
EVALUATE = "evaluate"
EXPORT = "export"
PUBLISH = "publish"
NOTIFY = "notify"
WRITE_CONTROL = "write_control"

# Read-only looks (the CLI's ``data validate`` and ``retrain logs``)
VALIDATE_DATASET = "validate_dataset"
READ_TRAINING_LOG = "read_training_log"

# Registry operations
LIST_VERSIONS = "list_versions"
SHOW_VERSION = "show_version"
PROMOTE_VERSION = "promote_version"
ROLLBACK_PRODUCTION = "rollback_production"
DOWNLOAD_LINKS = "download_links"
VERIFY_MODEL = "verify_model"

# Pretrained-weights catalog and inspection
INSPECT_WEIGHTS = "inspect_weights"
RECORD_WEIGHTS = "record_weights"
LIST_WEIGHTS = "list_weights"

# Batch prediction
PLAN_PREDICTION = "plan_prediction"
PREDICT_SHARD = "predict_shard"
"""Served on both queues: the GPU queue runs ``model.pt``, the CPU queue ``model.onnx``."""
FINISH_PREDICTION = "finish_prediction"

# Retention
COLLECT_GARBAGE = "collect_garbage"

# Workflows
RETRAIN_WORKFLOW = "RetrainWorkflow"
CONTROLLER_WORKFLOW = "RetrainCheckWorkflow"
COUNT_NEW_VERIFIED = "count_new_verified"
LIST_VERSIONS_WORKFLOW = "ListVersionsWorkflow"
SHOW_VERSION_WORKFLOW = "ShowVersionWorkflow"
PROMOTE_VERSION_WORKFLOW = "PromoteVersionWorkflow"
ROLLBACK_PRODUCTION_WORKFLOW = "RollbackProductionWorkflow"
GC_WORKFLOW = "GarbageCollectionWorkflow"
IMPORT_MODEL_WORKFLOW = "ImportModelWorkflow"
ADD_WEIGHTS_WORKFLOW = "AddWeightsWorkflow"
LIST_WEIGHTS_WORKFLOW = "ListWeightsWorkflow"
VALIDATE_DATASET_WORKFLOW = "ValidateDatasetWorkflow"
TRAINING_LOG_WORKFLOW = "TrainingLogWorkflow"
DOWNLOAD_LINKS_WORKFLOW = "DownloadLinksWorkflow"
VERIFY_MODEL_WORKFLOW = "VerifyModelWorkflow"
PREDICT_WORKFLOW = "PredictWorkflow"

# RetrainWorkflow's handlers (PredictWorkflow answers ``progress`` with :class:`PredictProgress`
# and takes ``stop_early``: finish the shards running, start no more, write what was predicted)
PROGRESS_QUERY = "progress"
"""Query: stage, epoch, metrics, counts, timing, decision (:class:`Progress`)."""
TRAINING_PROGRESS_SIGNAL = "training_progress"
"""Signal sent by the train activity after each epoch (:class:`TrainingProgress`)."""
STOP_EARLY_SIGNAL = "stop_early"
"""Signal: finish training after the current epoch, continue with the best weights."""
APPROVE_UPDATE = "approve"
"""Update: approve the pending promotion (:class:`ApprovalDecision`)."""
REJECT_UPDATE = "reject"
"""Update: reject the pending promotion (:class:`ApprovalDecision`)."""
