"""grutool: train, evaluate and inspect GRU sequence models.

Python API (imports torch on first use, not on `import grutool`):

    from grutool import load_config, train, evaluate, Predictor
    summary = train(load_config("configs/sentiment.yaml"))
"""

__version__ = "0.1.0"

_LAZY = {
    "load_config": ("grutool.config_file", "load_config"),
    "train": ("grutool.training.loop", "train"),
    "evaluate": ("grutool.evaluate", "evaluate"),
    "Predictor": ("grutool.predict", "Predictor"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'grutool' has no attribute {name!r}")
