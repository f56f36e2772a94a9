"""The decision room: whether the nearest live candidate answers a query.

Everything that decides lives here: the distance (``distance``), the rules over what
differs between the two texts (``rules``, ``numbers``), the judges (``judges``: the pair
model, the verifier) and the stage in force (``stage``), the wrong-rate bound
(``wrong_rate``, ``bound``). The one entry point is :meth:`decide.Decision.decide`: a
query and its candidates in, a :class:`verdict.Verdict` with its reason out.
"""
