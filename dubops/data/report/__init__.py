"""The learnability report: can each dubbing task be learned from this corpus?

One module per measurement (``speakers``, ``prosody``, ``lipsync``, ``scene``,
``wer``), each a pure function of the clips and their decoded media;
``build`` runs them all, ``table`` prints the result.
"""

from dubops.data.report.build import build_report
from dubops.data.report.table import format_report

__all__ = ["build_report", "format_report"]
