"""Verification of a built toolchain, one module per layer: version, asm, ast, behavior, stability.

``runner.verify`` is the stage function (``runner.verify_targets`` for several targets); it
records the verdict of the build of HEAD in verify.json (``verdict``), which release requires.
``report`` renders a Report as text (a line per layer and per changed function, the verdict
last; the assembly diffs on request), JSON and HTML."""
