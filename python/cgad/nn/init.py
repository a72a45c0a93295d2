"""In-place initializers (not recorded by autograd), drawing from cgad's one generator."""


def normal_(t, mean=0.0, std=1.0):
    """Fills t with N(mean, std^2) samples."""
    return t.normal_(mean, std)


def zeros_(t):
    """Fills t with zeros."""
    return t.zero_()


def ones_(t):
    """Fills t with ones."""
    return t.fill_(1.0)


def uniform_(t, a=0.0, b=1.0):
    """Fills t with U(a, b) samples."""
    return t.uniform_(a, b)
