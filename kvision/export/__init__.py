"""Export: versioned SavedModels for TF Serving."""

from kvision.export.saved_model import export_saved_model, next_version

__all__ = ["export_saved_model", "next_version"]
