"""The built-in letters: synthetic training data charrec renders itself, so a fresh install
needs no dataset.

`synth` renders whole datasets and batches (fonts and handwriting, geometry, paper, light and
camera); `fonts` finds the usable font faces and draws their glyphs, with `font_cache` keeping
the per-user cache of those checks; `strokes` holds the pen skeletons of the capitals and
`handwriting` draws them (and handwriting fonts) with pen physics on paper.
"""
