"""Metric pieces every family's metrics share; each family's own metrics are in its folder (grutool.families.<name>.metrics)."""
