"""Other hosts, reached over SSH: a class's hosts run hyperlab themselves, and this floor carries a
command there and its answer back. Imports core/ and host/ only; ops/ and grading/ both use it."""
