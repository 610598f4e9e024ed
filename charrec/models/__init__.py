"""The model that ships inside the package (`bundled.pth`, package data) and `resolve.py`, which
decides which checkpoint `charrec predict` and `charrec test` use. Training code and the
checkpoint format do not belong here (`charrec.train`, `charrec.checkpoint`)."""
