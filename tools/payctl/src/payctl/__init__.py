"""payctl: the operators' CLI for Paystream's event bus."""
