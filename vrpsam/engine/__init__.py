"""The run layer: Lightning modules, callbacks, metrics, losses, the protocol, and the training
and evaluation runs as pure functions of a composed config."""
