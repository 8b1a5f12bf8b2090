"""Model components (one-body, pair, ACE, Coulomb) and the stack that sums them."""

from .coulomb import Coulomb
from .stack import Stack

__all__ = ["Coulomb", "Stack"]
