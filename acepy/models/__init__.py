"""Model components (one-body, pair, ACE) and the stack that sums them."""
