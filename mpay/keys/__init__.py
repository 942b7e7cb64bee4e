"""Key material: the on-disk key cache (RSA key generation is slow) and the interoperability
vectors written from it."""
