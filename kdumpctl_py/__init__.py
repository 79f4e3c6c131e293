"""kdumpctl-py: reserve, load, capture and analyse Linux kernel crash dumps."""

__version__ = "0.1.0"
