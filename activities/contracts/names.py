"""Activity and workflow names: the only link between workflow code and activity code."""

# Pipeline stages
ASSEMBLE_DATASET = "assemble_dataset"
TRAIN = "train"
EVALUATE = "evaluate"
EXPORT = "export"
PUBLISH = "publish"
NOTIFY = "notify"
WRITE_CONTROL = "write_control"

# Registry operations
LIST_VERSIONS = "list_versions"
SHOW_VERSION = "show_version"
PROMOTE_VERSION = "promote_version"
ROLLBACK_PRODUCTION = "rollback_production"

# Workflows
RETRAIN_WORKFLOW = "RetrainWorkflow"
CONTROLLER_WORKFLOW = "RetrainCheckWorkflow"
COUNT_NEW_VERIFIED = "count_new_verified"
