"""The Dapr side of superstep: the API/coordinator app and the executor host apps.

This is the only package that imports ``dapr``. Apps:

* ``executor_host.api:create_app`` — HTTP API + ``SuperstepCoordinator`` actors;
* ``executor_host.host:create_app`` — the executor actors of one pool.

The wire protocol between them is in ``executor_host.protocol`` (docs/protocol.md).
"""
