"""Infrastructure shared by activities, workers and the client side: settings, object
storage, typed errors, the Temporal connection and the Ultralytics offline bootstrap.

No stage logic lives here, and nothing here imports a stage or a workflow.
"""
