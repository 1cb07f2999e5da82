"""Findings: the claims a config declares, measured on its runs with intervals over seeds and
test images, corrected for multiplicity (engine.py), from per-image records `score` keeps
(per_image.py). See config/README.md (findings) and docs/findings.md."""
