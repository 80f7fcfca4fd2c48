"""The chaos suite: seeded runs of a looping fan-out/fan-in workflow on a local
deployment of the Dapr runtime, each under one fault, compared with the in-process run.

    python -m tests.chaos --runs 10 --seed 1 --fault kill-host-replica
    python -m tests.chaos --runs 5 --seed 1 --fault all --sidecar daprd --out table.md

``workflow`` is what the deployment serves (imported by the apps, so it imports
nothing else of this package); ``harness`` holds the deployment, the fault classes and
the run/compare logic; ``test_chaos`` runs a small seeded slice of every class.
"""
