"""This host: the libvirt connection and apply, the host network side, the accelerator test,
instance files and lock. Imports core/ and render/."""
