"""VRP-SAM model parts: frozen backbones, frozen SAM, the learnable VRP encoder, composition."""
