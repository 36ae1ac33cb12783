"""Test support shared by every service's suite: real servers, fresh databases, real processes."""

from paystream.testing.polling import eventually
from paystream.testing.processes import ServiceProcess

__all__ = ["ServiceProcess", "eventually"]
