"""Loaded by Python at start-up in every process of the image (patches/ is on PYTHONPATH).

It only registers an import hook: torch is patched when something first imports it, so a
plain `python` call stays as fast as without this file. See capability_spoof.py.
"""

try:
    import capability_spoof
except ImportError:  # patches/ not importable as top level: nothing to do
    pass
else:
    capability_spoof.install_import_hook()
