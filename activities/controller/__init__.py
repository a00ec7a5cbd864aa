"""The controller's stage: counting verified images production was not trained on."""

from activities.controller.activity import ControllerActivities

__all__ = ["ControllerActivities"]
