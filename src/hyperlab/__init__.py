"""hyperlab: YAML lab topologies deployed onto libvirt, checked by pytest."""

__version__ = "0.1.0"
