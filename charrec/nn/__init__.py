"""charrec's networks, built from our own autograd Functions.

`functions` (dense ops and losses) and `conv` (convolution, pooling) hold the Functions with
their maths; `layers` the modules that hold weights; `model` the MLP, the CNN and
`build_model`; `gradcheck`, `summary` and `som` the tools on top. Functions never import
modules; nothing here imports data, training or the CLI.
"""
