"""Reports from stored evaluations (no training, no inference): tables.py (the long metrics
table and paper-shaped tables), plots.py (metric plots), pictures.py (detections drawn on test
images), page.py (results/index.html, with provenance.py: code and library versions, stage times)."""
