"""Golden images: the store, the builders and the one registry (name -> builder, phases).
Imports core/, render/, host/ and guest/."""
