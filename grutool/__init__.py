"""grutool: train, evaluate and inspect GRU sequence models.

Python API (imports torch on first use, not on `import grutool`):

    from grutool import load_config, train, evaluate, Predictor
    summary = train(load_config("configs/sentiment.yaml"))
"""

from grutool.version import __version__  # noqa: F401  (the public `grutool.__version__`)

# `grutool.evaluate` is both a submodule and the function: importing a submodule sets the package's
# attribute to the module, so a lazy attribute of the same name would be shadowed the first time any
# code imported `grutool.evaluate`. Importing it here (it is torch-free at import) and binding the name
# afterwards makes `from grutool import evaluate` the function whatever was imported before.
from grutool.evaluate import evaluate  # noqa: E402

_LAZY = {
    "load_config": ("grutool.config_file", "load_config"),
    "train": ("grutool.training.loop", "train"),
    "Predictor": ("grutool.predict", "Predictor"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'grutool' has no attribute {name!r}")


def __dir__():
    # The lazy names too: `dir(grutool)` and editors' completion list them before their first use.
    return sorted(set(globals()) | set(_LAZY))
