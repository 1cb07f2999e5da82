"""bgshift: background-bias and missing-annotation experiments for object detection."""
__version__ = "0.1.0"
