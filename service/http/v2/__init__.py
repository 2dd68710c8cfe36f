"""The Open Inference Protocol (KServe V2, as Triton and MLServer speak it) beside ganserve's own API.

Every model's generator and discriminator are V2 models of their own, `<model>.generator` and
`<model>.discriminator` (a card's name never holds a dot, so the split is unambiguous), versioned by
the card's version. `tensors.py` reads requests and writes answers (JSON tensors and the binary
tensor extension); `routes.py` serves them through the same engine and micro-batchers as /sample.
"""
