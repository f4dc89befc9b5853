"""Pure text out: libvirt XML (the one domain writer), host-side rules, unattend media, Windows
scripts, the diagram. Imports core/ only, and nothing that talks to the world."""
