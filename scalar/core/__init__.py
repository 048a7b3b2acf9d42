"""The ground floor: what every layer uses (tokens, box codecs, tokenizer loading, the batch
contract, pictures, errors, config and file helpers, ranks). Imports nothing of ``scalar``
above it; the layer order is declared in ``tests/test_layers.py`` and drawn in
``docs/design.md``."""
