"""Verification of a built toolchain, one module per layer: version, asm, ast, behavior, stability.

``runner.verify`` is the stage function; ``report`` renders its Report as text, JSON and HTML."""
