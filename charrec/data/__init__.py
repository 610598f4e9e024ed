"""Images in, tensors out: preprocessing, loading splits, importing datasets, the built-in
synthetic letters (fonts, pen strokes), batch augmentation and contact sheets.

Nothing here imports networks, training, sweeps or the CLI.
"""
