"""kvision's version: a leaf module, so setup.py and the run records read it without importing the package."""

__version__ = "0.1.0"
