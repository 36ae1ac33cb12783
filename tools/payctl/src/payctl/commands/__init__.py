"""One module per `payctl` command; each registers its sub-parser and its handler."""
