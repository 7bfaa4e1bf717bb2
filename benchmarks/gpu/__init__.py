"""The one-command GPU acceptance run (docs/gpu.md): ``prepare`` (wheels, here) and ``run`` (on the GPU machine)."""
