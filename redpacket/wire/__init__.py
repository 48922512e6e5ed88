"""The lab on the wire: a proxy between any client and the real server.

``proxy`` listens and relays; each engine names its protocol module
(``engine.wire_protocol()``: ``postgresql`` here); ``housekeeping`` says which round
trips are no steps; ``tracer`` prints every transaction that passes; the race over
the wire is ``redpacket.race.wire_calls``.
"""
