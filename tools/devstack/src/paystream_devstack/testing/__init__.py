"""Test support shared by every service's suite: real servers, fresh databases, real processes."""

from paystream_devstack.testing.polling import eventually
from paystream_devstack.testing.processes import ServiceProcess

__all__ = ["ServiceProcess", "eventually"]
