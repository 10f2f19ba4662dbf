"""The control plane's work, one module per resource; routers only adapt HTTP to these."""
