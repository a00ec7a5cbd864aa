"""ONNX export with parity check: :mod:`.parity` (export, checks), :mod:`.activity`."""

from activities.export.activity import ExportActivities, export

__all__ = ["ExportActivities", "export"]
