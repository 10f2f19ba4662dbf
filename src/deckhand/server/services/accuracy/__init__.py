"""Accuracy from actuals (docs/accuracy.md): predictions kept by association id, actuals
matched to them, and per-minute sums from which every metric is computed."""
