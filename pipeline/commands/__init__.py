"""One module per group of CLI commands; each exposes ``register(app)``.

They only translate flags into Options/stage calls and stage results into text or JSON.
"""
