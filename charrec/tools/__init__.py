"""Tools that look at networks from outside: layer tables (`summary`), the gradient checks of
every hand-written backward (`gradcheck`) and the Kohonen self-organising map (`som`).

The network maths they inspect lives in `charrec.nn`; the commands that show them in
`charrec.cli.inspect`.
"""
