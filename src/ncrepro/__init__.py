"""ncrepro: reproduce neural-collapse papers."""
