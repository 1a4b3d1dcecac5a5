"""OPNFV Doctor fault management for OpenStack, as plugins."""
