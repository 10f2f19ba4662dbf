"""The management agent: follows the desired state of its prediction environments and
drives each environment's plugin until the real world matches (level-triggered)."""
