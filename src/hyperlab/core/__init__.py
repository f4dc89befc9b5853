"""The pure core: model, YAML loading and validation, planning, catalog, variables, steps, units.

No I/O beyond reading the lab's own files; imports nothing of hyperlab and no libvirt, processes or
sockets (tests/unit/test_architecture.py, docs/design/architecture.md)."""
