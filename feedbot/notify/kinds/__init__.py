"""One module per destination kind; ``base`` holds what they share."""
