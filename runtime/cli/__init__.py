"""The ``superstep`` command line.

    superstep demo [--docs N] [--workers M] [--latency-ms X] [--seed S]
    superstep run module:attr --input JSON [--checkpoint-dir DIR [--create]] [--resume ID]
                  [--responses JSON]
    superstep graph module:attr --format mermaid|dot
    superstep checkpoints list DIR

Bad arguments give one line on stderr and exit status 2; a run that ends failed,
stalled or cancelled exits with 1; output to a pipe whose reader went away ends the
command quietly with 141 (128 + SIGPIPE), as for any Unix tool.
"""

from runtime.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
