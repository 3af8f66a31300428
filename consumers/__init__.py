"""billy's consumer groups, one package each."""
