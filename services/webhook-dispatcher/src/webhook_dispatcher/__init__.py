"""Paystream service package."""
